"""The `vidattack` command line (`vidattack.cli:main`); see `vidattack.cli.app`."""

from vidattack.cli.app import app, main

__all__ = ["app", "main"]
