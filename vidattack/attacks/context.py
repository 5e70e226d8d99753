"""What an attack may use beyond the model and the video: per-video randomness, the frame plan's
frame numbers, the region it narrowed itself to, progress and its history."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from vidattack.errors import BadParameterError
from vidattack.threat import FrameSpec, ThreatModel

#: What an attack (or any stage that counts) calls with `(done, total)` as it advances.
StepFn = Callable[[int, int], None]


@dataclass
class AttackContext:
    """What an attack may use beyond the model and the video: randomness, frame numbers, reporting.

    `frame_ids` are the video frame numbers of the T sampled frames and `num_frames` the video's
    length, both from the model's frame plan. `restrict_to` is set through `restrict`.

    Randomness is per video: `generators` holds one generator per video, each seeded as if its video
    were attacked alone, so a batch of N videos draws for video i exactly what a batch of one would
    (`random_start`, `shared`). `generator` is the first of them; an attack that draws from it directly
    draws once for the whole batch (and is not `batchable`). `stop_when_fooled` is the log-probability
    margin at which the shared loop stops a video (None: run every step).
    """

    generator: torch.Generator
    frame_ids: tuple[int, ...]
    num_frames: int
    progress: StepFn | None = None
    info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    max_queries: int | None = None
    restrict_to: Tensor | None = None
    num_videos: int = 1
    starting_points: Tensor | None = None  # (N, T, C, H, W): a start inside the target class, if given
    generators: list[torch.Generator] = field(default_factory=list)
    stop_when_fooled: float | None = None
    # one history per video, filled by `record_each` (the shared loop); `history` is the batch's
    histories: list[list[dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.generators:
            self.generators = [self.generator]
        if not self.histories:
            self.histories = [[] for _ in range(self.num_videos)]

    def random_start(self, threat: ThreatModel, x: Tensor) -> Tensor:
        """`threat.random_start` drawn per video, each from its own generator: video i's start does not
        depend on which other videos share its batch."""
        if len(self.generators) == 1:
            return threat.random_start(x, self.generators[0])
        starts = []
        for i, gen in enumerate(self.generators):
            idx = torch.tensor([i], device=x.device)
            starts.append(threat.take(idx).random_start(x[i : i + 1], gen))
        return torch.cat(starts)  # (N, T, C, H, W)

    def generator_of(self, video: int) -> torch.Generator:
        """Video `video`'s own generator (the batch's one when the context has a single generator)."""
        return self.generators[video] if len(self.generators) > 1 else self.generators[0]

    def shared(self, draw: Callable[[torch.Generator], Any]) -> Any:
        """A random choice the whole batch shares (one rectangle, one set of frames): drawn with every
        video's generator, so each advances as if alone, and refused when the draws differ."""
        values = [draw(gen) for gen in self.generators]
        first = values[0]
        for other in values[1:]:
            same = torch.equal(first, other) if isinstance(first, Tensor) else first == other
            if not same:
                raise BadParameterError(
                    "expected one random choice for the whole batch, got different draws per video "
                    "(different seeds): attack these videos one at a time"
                )
        return first

    def select_frames(self, spec: FrameSpec | str) -> Tensor:
        """The sampled frames a `frames` parameter allows, `(T,)` bool on the generator's device.

        Records the chosen video frame numbers under `info["frames"]` (the one key every attack reports
        its frame choice under); raises when the model samples none of them.
        """
        spec = FrameSpec.parse(spec)
        chosen = self.shared(lambda gen: spec.select(self, gen).to(gen.device))
        if not bool(chosen.any()):
            ids = self.frame_ids
            shown = ", ".join(map(str, ids)) if len(ids) <= 8 else f"{ids[0]}..{ids[-1]}"
            raise BadParameterError(
                f"expected frames the model samples ({shown}), got {str(spec)!r}, none of them sampled"
            )
        self.info["frames"] = [f for f, keep in zip(self.frame_ids, chosen.tolist(), strict=True) if keep]
        return chosen

    def restrict(self, mask: Tensor) -> None:
        """Narrow the threat model to `mask` once `run` knows what it changed (frame saliency learns
        its frames only by attacking): the template quantizes and measures in the narrowed model, so
        nothing outside `mask` can move. Attacks never change the threat model themselves."""
        self.restrict_to = mask if self.restrict_to is None else self.restrict_to & mask

    def step(self, done: int, total: int) -> None:
        """Report progress (steps or queries done out of total)."""
        if self.progress is not None:
            self.progress(done, total)

    def record(self, **row: float) -> None:
        """Append a row to the attack's history (loss curve, query curve)."""
        self.history.append({k: float(v) for k, v in row.items()})

    def record_each(self, videos: list[int], **columns: Sequence[float] | Tensor) -> None:
        """Append one row to the history of each of `videos`, column values given per video (in the
        order of `videos`): a batch's curves stay per video."""
        # one conversion per column, not one tensor index per value: this runs after every step
        lists = {k: col.tolist() if isinstance(col, Tensor) else col for k, col in columns.items()}
        for j, v in enumerate(videos):
            self.histories[v].append({k: float(col[j]) for k, col in lists.items()})
