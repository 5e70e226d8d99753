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
    """List the attacks (name, kind, paper, what each does), or show the one named with its
    parameters, defaults, threat model and paper. A table unless --format says otherwise.

    --eps, --alpha and --steps of `vidattack perturb` set each attack's own budget, step size and
    iteration count (eps_m for MultAV); --set KEY=VALUE sets any other parameter listed here.
    """
    from vidattack.attacks.registry import attack_class, attack_names

    names = [attack_class(name).name] if name is not None else attack_names()
    # describe() gives each default as written too (`default_text`: 4/255, true, 300000)
    described = [attack_class(n).describe() for n in names]
    # a listing is for reading: a table unless --format says otherwise, piped into `less` too
    chosen = o.default_format(fmt, piped=o.Format.table)
    emit(described, chosen, table=attack_tables if name is not None else attack_list, key="attacks")


def short_paper(paper: str) -> str:
    """`Madry et al., Towards ..., ICLR 2018; defaults from ...` as `Madry et al., ICLR 2018`."""
    parts = [p.strip() for p in paper.split(";")[0].split(",")]
    return f"{parts[0]}, {parts[-1]}" if len(parts) > 2 else ", ".join(parts)


def attack_list(rows: list[Record], console: Console) -> None:
    """The short list: one line per attack (name, kind, paper, what it does)."""
    from rich.table import Table

    t = Table(
        title="attacks (vidattack attacks NAME shows one attack's parameters)",
        title_justify="left",
        header_style="bold",
        box=None,
    )
    # one line per attack: the name and kind whole, the paper and summary cut with an ellipsis where
    # they do not fit (`attacks NAME` has them all); each column has a space on either side
    papers = [short_paper(str(d["paper"])) for d in rows]
    name_w = max((len(d["name"]) for d in rows), default=4)
    paper_w = min(max((len(p) for p in papers), default=5), max(12, console.width // 5))
    what_w = max(console.width - name_w - 9 - paper_w - 8, 12)
    for col, width in (("name", name_w), ("kind", 9), ("paper", paper_w), ("what it does", what_w)):
        t.add_column(col, no_wrap=True, overflow="ellipsis", width=width)
    for d in rows:
        kind = "white-box" if d.get("white_box") else "black-box"
        t.add_row(cell(d["name"]), kind, cell(short_paper(str(d["paper"]))), cell(d["summary"]))
    console.print(t)


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
