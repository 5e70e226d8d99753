"""`vidattack models`: the bundled models and the supported checkpoint architectures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit

if TYPE_CHECKING:
    from rich.console import Console


def models(fmt: o.FormatOption = None) -> None:
    """List the bundled models and the supported checkpoint architectures."""
    from vidattack.models import list_models

    emit([list_models()], o.default_format(fmt, piped=o.Format.json), table=model_tables, key=None)


def model_tables(rows: list[Record], console: Console) -> None:
    """Two tables: bundled models, then architectures with their preprocessing."""
    from rich.table import Table

    info = rows[0]
    t = Table(title="bundled models (use --model NAME)", title_justify="left", header_style="bold")
    t.add_column("name")
    t.add_column("description", overflow="fold")
    for name, desc in info.get("bundled", {}).items():
        t.add_row(cell(name), cell(desc))
    console.print(t)
    a = Table(
        title="architectures (use --model ARCH:WEIGHTS or torchvision:ARCH)",
        title_justify="left",
        header_style="bold",
    )
    a.add_column("arch")
    a.add_column("preprocess", overflow="fold")
    a.add_column("pretrained", overflow="fold")
    for name, spec in info.get("architectures", {}).items():
        a.add_row(cell(name), cell(spec.get("preprocess", "")), cell(spec.get("pretrained", "")))
    console.print(a)
