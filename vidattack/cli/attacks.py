"""`vidattack attacks [NAME]`: every attack (or one) with its parameters, defaults, threat model and paper."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit

if TYPE_CHECKING:
    from rich.console import Console


def attacks(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Show only this attack.", show_default=False)
    ] = None,
    fmt: o.FormatOption = None,
) -> None:
    """List every attack (or the one named) with its parameters, defaults, threat model and paper.

    --eps, --alpha and --steps of `vidattack perturb` set each attack's own budget, step size and
    iteration count (eps_m for MultAV); --set KEY=VALUE sets any other parameter listed here.
    """
    from vidattack.attacks.registry import attack_class, attack_names

    names = [attack_class(name).name] if name is not None else attack_names()
    # describe() gives each default as written too (`default_text`: 4/255, true, 300000)
    described = [attack_class(n).describe() for n in names]
    emit(described, o.default_format(fmt), table=attack_tables, key="attacks")


def attack_tables(rows: list[Record], console: Console) -> None:
    """One table per attack: its parameters, with the threat model and paper as caption."""
    from rich.table import Table
    from rich.text import Text

    for d in rows:
        t = Table(
            title=Text.assemble((d["name"], "bold"), "  ", d["summary"]),
            title_justify="left",
            header_style="bold",
            expand=False,
            caption=Text(f"threat: {d['threat']}\npaper: {d['paper']}"),
            caption_justify="left",
        )
        for col in ("parameter", "type", "default", "help"):
            t.add_column(col, overflow="fold")
        for p in d["params"]:
            t.add_row(cell(p["name"]), cell(p["type"]), cell(p["default_text"]), cell(p["help"]))
        console.print(t)
