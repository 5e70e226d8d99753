"""The `vidattack` console script's first code: signals answered from the first instant.

Importing the command line (typer, rich, every command's module) takes a while, and until each
command installs its own handlers (`vidattack.cancel.raising_on_signals`) a SIGINT printed a
`KeyboardInterrupt` traceback. So this module, which imports nothing heavy, installs handlers that
end the process with one line and 128 + the signal, then imports and runs the command line. A
command's own handlers replace these while it runs and restore them after.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum: int, frame: FrameType | None) -> None:
    """Exit at once with one line (SystemExit, not KeyboardInterrupt: click would print `Aborted!`)."""
    for s in _SIGNALS:  # a second signal while exiting changes nothing
        signal.signal(s, signal.SIG_IGN)
    sys.stderr.write(f"Error: interrupted by {signal.Signals(signum).name} while starting\n")
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point (`vidattack`, `python -m vidattack`): answer SIGINT and SIGTERM, then
    run `vidattack.cli.app.main`."""
    for s in _SIGNALS:
        signal.signal(s, _stop)
    from vidattack.cli.app import main as run

    run()
