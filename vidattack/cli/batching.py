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
    from vidattack.cli.progress import BatchProgress
    from vidattack.models.view import ModelView
    from vidattack.pipeline.signals import Interrupted, InterruptGuard
    from vidattack.pipeline.spec import JobSpec

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


class BatchState:
    """What the batch has done so far, for the closing message."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.attacked = 0
        self.skipped = 0
        self.failed = 0
        self.interrupted: Interrupted | None = None  # set when a signal stopped the batch


def run_engine(
    planned: list[Any],
    spec: JobSpec,
    view: ModelView,
    progress: BatchProgress | None,
    *,
    guard: InterruptGuard | None = None,
    state: BatchState | None = None,
    batch_size: int | None = None,
) -> Iterator[Record]:
    """Each input's record, in order, from `vidattack.pipeline.engine.perturb_many` running `spec` with
    `view`; errors become error records (one stderr line each). `planned` are
    `vidattack.pipeline.names.Planned` (path, output set or error).

    With `guard`, SIGINT and SIGTERM stop the batch: the engine finishes the writes under way, the
    records of finished inputs still come, and `state.interrupted` says which signal stopped it.
    """
    from vidattack.cancel import Cancelled
    from vidattack.pipeline.engine import Schedule, perturb_many
    from vidattack.pipeline.signals import Interrupted

    state = state if state is not None else BatchState(len(planned))
    stop = None if guard is None else (lambda: guard.received is not None)
    schedule = Schedule(batch_size=batch_size, should_stop=stop)
    records = perturb_many(planned, spec, model=view, schedule=schedule, progress=progress)
    try:
        for record in records:
            if record["status"] != "ok":
                state.failed += 1
                item_error(record)
            elif record.get("skipped"):
                state.skipped += 1
            else:
                state.attacked += 1
            if progress is not None:
                progress.finished(record["input"])
            yield record
    except Cancelled as e:  # a frame loop stopped for the signal; the engine removed unfinished outputs
        state.interrupted = Interrupted(e.signum)
        return
    if guard is not None and guard.received is not None:
        state.interrupted = Interrupted(guard.received)
