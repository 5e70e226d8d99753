"""`vidattack predict`: the model's prediction for each video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit, item_error
from vidattack.errors import BadParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console


def predict(
    inputs: o.Inputs,
    model: o.Model = None,
    arch: o.Arch = None,
    labels: o.Labels = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, metavar="K", help="How many classes to list.")
    ] = 5,
    device: o.Device = "auto",
    threads: o.Threads = 0,
    fmt: o.FormatOption = None,
    verbose: o.Verbose = False,
) -> None:
    """Print the model's prediction for each video (index, label, confidence, top-k)."""
    from vidattack.models import load_model
    from vidattack.pipeline import predict_file, resolve_device, set_cpu_threads
    from vidattack.pipeline.batch import Input, expand_inputs, run_batch

    o.setup_logging(verbose, False)
    chosen = o.default_format(fmt)
    set_cpu_threads(threads)
    dev = resolve_device(device)
    view = load_model(model, arch=arch, labels=labels, trust_checkpoint=trust_checkpoint, device=dev)
    items = expand_inputs(inputs)
    if not items:
        raise BadParameterError("expected video files in the inputs, found none")

    def job(item: Input) -> Record:
        return {"status": "ok", **predict_file(item.path, model=view, device=dev, top_k=top_k)}

    def records() -> Iterator[Record]:
        for record in run_batch(items, job):
            if record["status"] != "ok":
                item_error(record)
            yield record

    def table(rows: list[Record], console: Console) -> None:
        from rich.table import Table

        t = Table(header_style="bold")
        for col in ("input", "label", "confidence", f"top {top_k}"):
            t.add_column(col, overflow="fold")
        for r in rows:
            if r["status"] != "ok":
                t.add_row(cell(r["input"]), cell(f"error: {r['error']}", "red"), "-", "-")
            else:
                tops = ", ".join(f"{x['label']} {x['confidence']:.2f}" for x in r["top"])
                t.add_row(cell(Path(r["input"]).name), cell(r["label"]), f"{r['confidence']:.3f}", cell(tops))
        console.print(t)

    done = emit(records(), chosen, table=table)
    raise typer.Exit(1 if any(r["status"] != "ok" for r in done) else 0)
