"""Progress of a job, reported through a callback: the library never prints.

Each stage of `perturb_file` calls `progress(ProgressEvent(...))` when it starts and as it advances;
the CLI turns the events into Rich progress bars on stderr (`vidattack.cli.progress`), a notebook or
a service can log them or ignore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Stage = Literal["decoding", "attacking", "writing", "verifying", "rendering", "done"]

#: The stages of one job, in order.
STAGES: tuple[Stage, ...] = ("decoding", "attacking", "writing", "verifying", "rendering", "done")


@dataclass(frozen=True)
class ProgressEvent:
    """Where one job stands: `stage`, `done` of `total` `unit`s in it (total None: not countable),
    and the `video` (its input path) the job works on.

    Units: "steps" (white-box iterations) or "queries" (black-box) while attacking, "pictures" while
    rendering; decoding, writing and verifying are single steps (0 of 1 when they start, 1 of 1 when
    they end).
    """

    stage: Stage
    done: int
    total: int | None
    video: str
    unit: str = ""


#: What a job reports its progress to.
ProgressFn = Callable[[ProgressEvent], None]
# An attack's `(done, total)` callback is `vidattack.attacks.context.StepFn`; `Reporter.counter` turns
# it into `ProgressEvent`s of one job.
