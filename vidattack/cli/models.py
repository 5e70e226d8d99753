"""`vidattack models`: the bundled models and the supported checkpoint architectures; `vidattack models
DIR`: what a model folder or ONNX file holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit
from vidattack.errors import BadCheckpointError

if TYPE_CHECKING:
    from rich.console import Console


def models(
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="DIR",
            help="A HuggingFace folder, an ONNX file or a folder holding one: show what it holds.",
            show_default=False,
        ),
    ] = None,
    fmt: o.FormatOption = None,
) -> None:
    """List the bundled models and the checkpoint architectures vidattack can load, or what a model
    folder (or ONNX file) DIR holds.

    One record per model: name, kind (bundled or architecture), description, preprocessing (frames
    per clip, clips, resize, crop, normalization), pretrained weights and how to name it in --model.
    With DIR, one record: its kind, architecture, weight files, labels, preprocessing, what it offers
    (gradients or scores only) and the attacks that fit it.
    """
    if path is not None:
        from vidattack.models.folders import describe_path

        if not path.exists():
            raise BadCheckpointError(f"no such folder or file: {path}")
        emit([describe_path(path)], o.default_format(fmt), table=folder_table)
        return
    from vidattack.models import list_models

    # a listing is for reading: a table unless --format says otherwise, piped into `less` too
    emit(
        model_records(list_models()),
        o.default_format(fmt, piped=o.Format.table),
        table=model_tables,
        key="models",
    )


def folder_table(rows: list[Record], console: Console) -> None:
    """What a model folder holds, one field per row; labels shortened to a count and the first few."""
    from rich.table import Table

    for r in rows:
        t = Table(title=cell(r["path"]), title_justify="left", header_style="bold", show_header=False)
        t.add_column("field", style="bold")
        t.add_column("value", overflow="fold")
        labels = r.get("labels") or []
        shown = ", ".join(labels[:5]) + (", ..." if len(labels) > 5 else "")
        t.add_row("kind", cell(r["kind"]))
        if r.get("architecture"):
            t.add_row("architecture", cell(r["architecture"]))
        weights = ", ".join(r["weights"]) + (
            " (pickled: needs --trust-checkpoint)" if r["needs_trust"] else ""
        )
        t.add_row("weights", cell(weights))
        if r.get("processor"):
            t.add_row("processor", cell(r["processor"]))
        t.add_row("labels", cell(f"{len(labels)}: {shown}" if labels else "(from the model's outputs)"))
        t.add_row("preprocess", cell(preprocess_text(r["preprocess"])))
        t.add_row("offers", cell(r["offers"]))
        t.add_row("attacks", cell(", ".join(r["attacks"])))
        for note in r.get("notes") or []:
            t.add_row("note", cell(note))
        console.print(t)


def model_records(listing: dict[str, Any]) -> list[Record]:
    """`list_models()` as one flat record per model (what JSON lines print, one per line)."""
    records: list[Record] = [
        {
            "name": name,
            "kind": "bundled",
            "description": desc,
            "preprocess": None,
            "pretrained": None,
            "spec": name,
        }
        for name, desc in listing.get("bundled", {}).items()
    ]
    for name, spec in listing.get("architectures", {}).items():
        records.append(
            {
                "name": name,
                "kind": "architecture",
                "description": spec.get("description", ""),
                "preprocess": spec.get("preprocess"),
                "pretrained": spec.get("pretrained"),
                "spec": spec.get("spec", f"{name}:PATH"),
            }
        )
    return records


def preprocess_text(p: dict[str, Any] | None) -> str:
    """A model's preprocessing in words: `16 frames x 5 clips, stride 1; resize 128x171, crop 112; ...`."""
    if not p:
        return ""

    def size(v: Any) -> str:
        return "x".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v)

    def numbers(v: Any) -> str:
        return " ".join(f"{x:.3g}" for x in v)

    parts = [f"{p.get('clip_len')} frames x {p.get('num_clips')} clips, stride {p.get('frame_stride')}"]
    geometry = []
    if p.get("resize") is not None:
        geometry.append(f"resize {size(p['resize'])}")
    if p.get("crop") is not None:
        geometry.append(f"crop {size(p['crop'])}")
    if geometry:
        parts.append(", ".join(geometry))
    if p.get("mean") is not None:
        parts.append(f"mean {numbers(p['mean'])}, std {numbers(p.get('std', []))}")
    return "; ".join(parts)


def model_tables(rows: list[Record], console: Console) -> None:
    """Two tables: bundled models, then architectures with their preprocessing in words."""
    from rich.table import Table

    t = Table(title="bundled models (use --model NAME)", title_justify="left", header_style="bold")
    t.add_column("name")
    t.add_column("description", overflow="fold")
    for r in rows:
        if r["kind"] == "bundled":
            t.add_row(cell(r["name"]), cell(r["description"]))
    console.print(t)
    a = Table(
        title="architectures (use --model ARCH:WEIGHTS or torchvision:ARCH)",
        title_justify="left",
        header_style="bold",
    )
    a.add_column("arch")
    a.add_column("description", overflow="fold")
    a.add_column("preprocess", overflow="fold")
    a.add_column("pretrained", overflow="fold")
    for r in rows:
        if r["kind"] == "architecture":
            a.add_row(
                cell(r["name"]),
                cell(r["description"]),
                cell(preprocess_text(r["preprocess"])),
                cell(r["pretrained"] or ""),
            )
    console.print(a)
