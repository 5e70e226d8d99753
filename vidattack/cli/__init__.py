"""The `vidattack` command line (`vidattack.cli:main`; the console script starts in `vidattack.startup`); see
`vidattack.cli.app`."""

from vidattack.cli.app import app, main

__all__ = ["app", "main"]
