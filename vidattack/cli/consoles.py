"""The Rich consoles every command prints through: markup and highlighting off, so data prints as itself.

Apart from `emit` (which holds everything else the commands print) because the shared options' progress
bars need a console too, and `emit` reads the options' `Format`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def stderr_console() -> Console:
    """A Rich console on stderr that never interprets markup or highlights data."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False)


def stdout_console() -> Console:
    """A Rich console on stdout that never interprets markup or highlights data."""
    from rich.console import Console

    return Console(highlight=False, markup=False)
