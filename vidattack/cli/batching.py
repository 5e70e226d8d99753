"""`vidattack perturb`'s batch options and its adapter to the pipelined engine (issue #12).

`run_engine` is the drop-in for the sequential loop over `perturb_file`: the same records in the same
order, one stderr line per failed input, the same progress bars; decoding, writing and rendering
overlap with the attack, and `--batch-size` videos of one clip shape share each forward/backward.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli.emit import Record, item_error

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.cli.progress import BatchProgress

BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        help="Videos of the same clip shape attacked together in one forward/backward. "
        "Default: 8 on CUDA, 1 on the CPU.",
        show_default=False,
    ),
]
StopWhenFooled = Annotated[
    float | None,
    typer.Option(
        "--stop-when-fooled",
        metavar="MARGIN",
        min=0.0,
        help="Stop each video's iterative attack once its 8-bit video is fooled by this log-probability "
        "margin (0: as soon as the label flips); the report's attack.info.stopped_at says after how "
        "many steps. Off by default: the papers' settings run every step.",
        show_default=False,
    ),
]


def run_engine(
    items: list[Any],
    atk: Attack,
    dev: Any,
    job_args: dict[str, Any],
    progress: BatchProgress | None,
    *,
    batch_size: int | None = None,
    stop_when_fooled: float | None = None,
) -> Iterator[Record]:
    """Each item's record, in order, from `vidattack.pipeline.engine.perturb_many`; errors become error
    records (one stderr line each). `job_args` are perturb_file's: model, out_dir, target, seed,
    overwrite (and heatmaps, pictures)."""
    from vidattack.pipeline.engine import perturb_many

    records = perturb_many(
        items,
        atk,
        device=dev,
        batch_size=batch_size,
        stop_when_fooled=stop_when_fooled,
        progress=progress,
        **job_args,
    )
    for record in records:
        if record["status"] != "ok":
            item_error(record)
        if progress is not None:
            progress.finished(record["input"])
        yield record
