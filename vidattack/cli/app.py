"""The `vidattack` command: a thin layer over the library, one module per command.

Commands parse options, call library functions, print data to stdout (table, JSON or JSON lines, via
`emit`) and everything else (progress, logs, errors) to stderr. Exit codes: 0 every input processed,
1 some inputs failed, otherwise the `exit_code` of the `VidattackError` that stopped the command (2 for
usage errors: options, the model, `--apply`). torch is imported only inside commands so `vidattack
--help` stays instant.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from vidattack.cancel import Cancelled, raising_on_signals
from vidattack.cli.attacks import attacks
from vidattack.cli.emit import print_error
from vidattack.cli.eval import eval_command
from vidattack.cli.helptext import use_metavars
from vidattack.cli.models import models
from vidattack.cli.perturb import perturb
from vidattack.cli.predict import predict
from vidattack.cli.serve import serve
from vidattack.cli.train import train
from vidattack.cli.universal import universal
from vidattack.errors import VidattackError
from vidattack.tempdirs import sweep_orphans

F = TypeVar("F", bound=Callable[..., Any])

use_metavars()  # help shows `INPUT`, not `INPUT <list[str]>` (vidattack.cli.helptext)

app = typer.Typer(
    name="vidattack",
    help="Adversarial attacks against video recognition models, on real video files.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


#: What to do after a signal stopped a command (perturb says it itself, with what was done).
_AFTER_A_STOP = {
    "eval_command": "finished records are kept; run the same command again to continue",
    "train": "run it again with --resume CHECKPOINT to continue from the last saved state",
}


def exits_on_errors(command: F) -> F:
    """A library error that stops a command becomes one `Error:` line and its class's exit code.

    SIGINT and SIGTERM stop every command the same way (`vidattack.cancel`): work under way stops
    within a frame, temp files and folders are removed, and the exit code is 128 + the signal. Before
    the command, the temporary folders that runs killed outright (kill -9) left behind are removed
    (`vidattack.tempdirs`).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with raising_on_signals():
                swept = sweep_orphans()
                if swept:
                    logging.getLogger("vidattack").info("removed %d orphaned temporary folders", len(swept))
                return command(*args, **kwargs)
        except VidattackError as e:
            print_error(str(e))
            raise typer.Exit(e.exit_code) from None
        except Cancelled as e:
            logging.getLogger("vidattack").debug("stopped here", exc_info=True)
            hint = _AFTER_A_STOP.get(command.__name__)
            print_error(f"interrupted by {e.name}" + (f"; {hint}" if hint else ""))
            raise typer.Exit(e.exit_code) from None

    return wrapper  # type: ignore[return-value]


for _command in (perturb, predict, attacks, models, universal, train, serve):
    app.command()(exits_on_errors(_command))
app.command("eval")(exits_on_errors(eval_command))


def _version(value: bool) -> None:
    if value:
        from vidattack import __version__

        sys.stdout.write(f"vidattack {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Adversarial attacks against video recognition models, on real video files."""


def main() -> None:
    """Console-script entry point: library errors that escape a command become one line and their class's
    exit code; anything else one line and exit 1, never a traceback."""
    try:
        app()
    except Exception as e:  # last resort: no traceback for users, the message says what went wrong
        print_error(str(e))
        raise SystemExit(e.exit_code if isinstance(e, VidattackError) else 1) from None


if __name__ == "__main__":
    main()
