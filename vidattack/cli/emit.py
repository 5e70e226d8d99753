"""Everything the commands print: records on stdout (table, JSON or JSON lines), one-line errors on stderr.

Data is never markup: paths, labels and messages go into Rich `Text` objects through
`vidattack.text.literal`, so a file named `m[/]x.mp4` prints as itself and a name with a newline or
bytes that are not UTF-8 stays on one line (issue #11). `print_error`, `item_error`, `print_note` and
`cell` are the only ways commands print data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from vidattack.cli.consoles import stderr_console, stdout_console
from vidattack.cli.options import Format
from vidattack.text import literal

if TYPE_CHECKING:
    from rich.console import Console

Record = dict[str, Any]
__all__ = [
    "cell",
    "emit",
    "item_error",
    "literal",
    "print_error",
    "print_note",
    "stderr_console",
    "stdout_console",
    "yes_no",
]

TableFn = Callable[[list[Record], "Console"], None]


def print_error(message: str, console: Console | None = None) -> None:
    """One `Error: ...` line on stderr, the message printed literally."""
    from rich.text import Text

    line = Text.assemble(("Error:", "bold red"), " ", literal(message) or "unknown error")
    (console or stderr_console()).print(line, soft_wrap=True)


def item_error(record: Record, console: Console | None = None) -> None:
    """The `Error:` line of a failed input, naming its path once (most messages already name it)."""
    message, path = literal(record.get("error", "")), literal(record.get("input", ""))
    print_error(message if path and path in message else f"{path}: {message}", console)


def print_note(message: str, console: Console | None = None) -> None:
    """One informational line on stderr (not an error), printed literally."""
    from rich.text import Text

    (console or stderr_console()).print(Text(literal(message)), soft_wrap=True)


def _write_line(line: str) -> None:
    # plain writes: Rich's Progress must not capture stdout, or JSON never reaches a pipe
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit(
    records: Iterable[Record],
    fmt: Format,
    *,
    table: TableFn,
    key: str | None = "results",
) -> list[Record]:
    """Print `records` in `fmt` and return them.

    JSON lines are written as each record arrives (a batch streams); JSON (one document, the list
    under `key`, or the single record itself when `key` is None) and the table wait for the last.
    """
    from vidattack.pipeline.report import to_json

    done: list[Record] = []
    for record in records:
        done.append(record)
        if fmt is Format.jsonl:
            _write_line(to_json(record, indent=None))
    if fmt is Format.json:
        _write_line(to_json({key: done} if key is not None else done[0]))
    elif fmt is Format.table:
        table(done, stdout_console())
    return done


def cell(value: object, style: str = "") -> Any:
    """A table cell holding `value` literally."""
    from rich.text import Text

    return Text(literal(value), style=style)


def yes_no(flag: bool) -> Any:
    return cell("yes", "green") if flag else cell("no", "red")
