"""One job between the stages: the `Job` record, its progress reporter and timing, and the parts of
its report that describe the attack and the model. `vidattack.pipeline.run` runs the stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidattack.pipeline.progress import ProgressEvent, ProgressFn, Stage
from vidattack.pipeline.report import AttackPart, JobPart, ModelPart, Timing

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.attacks.result import AttackResult
    from vidattack.models.view import ModelView
    from vidattack.pipeline.claim import Claim
    from vidattack.pipeline.outputs import Outputs
    from vidattack.pipeline.stages import Sampled
    from vidattack.video import SampledFrames


log = logging.getLogger("vidattack")
_warned: set[str] = set()  # warnings logged so far: once per process


@contextmanager
def timed(timing: Timing, stage: str) -> Iterator[None]:
    """Add the block's wall time to `timing.<stage>` (even when the block raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(timing, stage, getattr(timing, stage) + time.perf_counter() - start)


class Reporter:
    """Sends one job's `ProgressEvent`s to the caller's callback (or nowhere)."""

    def __init__(self, progress: ProgressFn | None, video: str) -> None:
        self.progress, self.video = progress, video

    def __call__(self, stage: Stage, done: int = 0, total: int | None = 1, unit: str = "") -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, done, total, self.video, unit))

    def counter(self, stage: Stage, unit: str) -> Any:
        """A `(done, total)` callback for a stage that counts (the attack's steps or queries)."""
        return None if self.progress is None else (lambda done, total: self(stage, done, total, unit))


def warnings_for(atk: Attack, view: ModelView) -> list[str]:
    """What the report should warn about this attack on this model (a universal perturbation learned
    on another model or preprocessing); each logged once per process, not once per video of a batch."""
    warnings = learned_elsewhere(atk, view)
    for warning in warnings:
        if warning not in _warned:
            _warned.add(warning)
            log.warning("%s", warning)
    return warnings


@dataclass
class Job:
    """One input between the stages: its claimed outputs, the decoded video, what the model samples of
    it, and the target and seed its attack uses.

    `source` is the input file (None for a clip made in memory, eval's synthetic datasets) and `name`
    what its report and progress call it; `claim` holds the output set's lock until the runner's
    `finish` (or, when the job fails before, whoever drops it: `claim.release(failed=True)` removes
    what the job wrote); `job` identifies the job in its report (`--resume`); `timing` is filled in as
    the stages run; `started` is when the job began (for `timing.total`); `tell` sends its progress
    events. `outside` counts the requests to a deployed model made for this job outside its attack
    (eval's clean classification, when the attack's own clean query goes through `--robust-to`)."""

    source: Path | None
    name: str
    outputs: Outputs
    video: SampledFrames
    sampled: Sampled
    tell: Reporter
    claim: Claim
    job: JobPart
    target: int | None
    seed: int
    timing: Timing = field(default_factory=Timing)
    started: float = field(default_factory=time.perf_counter)
    outside: int = 0


def attack_part(attack: Attack, result: AttackResult) -> AttackPart:
    """The report's `attack` part: the same keys for every attack, a universal perturbation included
    (its `info.learned_on` names the model and preprocessing it was learned against)."""
    info = dict(result.info)
    pert = getattr(attack, "perturbation", None)
    if pert is not None and hasattr(pert, "model"):
        info["learned_on"] = {
            "model": pert.model or None,
            "preprocess": pert.preprocess.to_dict() if pert.preprocess is not None else None,
        }
    return AttackPart(
        name=attack.name,
        params=result.params,
        threat=result.threat,
        paper=attack.paper,
        info=info,
        white_box=attack.white_box,
        precision=result.precision,
    )


def learned_elsewhere(attack: Attack, view: ModelView) -> list[str]:
    """Warnings for a universal perturbation learned on another model or preprocessing than `view`'s
    (it may still transfer; the numbers then measure transfer, not the attack it was learned as)."""
    pert = getattr(attack, "perturbation", None)
    if pert is None or not hasattr(pert, "model"):
        return []
    found = []
    if pert.model and pert.model != view.name:
        found.append(f"the perturbation was learned on model {pert.model}, applied to {view.name}")
    if pert.preprocess is not None and pert.preprocess.to_dict() != view.preprocess.to_dict():
        learned, used = pert.preprocess.to_dict(), view.preprocess.to_dict()
        changed = [k for k in learned if learned[k] != used.get(k)]
        found.append(
            "the perturbation was learned with another preprocessing: "
            + ", ".join(f"{k} {learned[k]} (now {used.get(k)})" for k in changed)
        )
    return found


def model_part(view: ModelView, sampled: Sampled) -> ModelPart:
    """The report's `model` part: identity, preprocessing and the frames this video's plan sampled."""
    return ModelPart(
        name=view.name,
        sha256=view.sha256,
        source=view.source,
        preprocess=view.preprocess.to_dict(),
        frames_sampled=list(sampled.plan.frame_ids),
        notes=view.notes,
        sent=_sent_through(view.sent_by(sampled.plan), sampled.model),
    )


def _sent_through(sent: dict[str, Any] | None, model: Any) -> dict[str, Any] | None:
    # --robust-to on a deployed model: each candidate went through the codec here before it was sent
    from vidattack.delivery.simulate import MeteredDeliveryModel

    if sent is None or not isinstance(model, MeteredDeliveryModel):
        return sent
    return {**sent, "codec": f"{sent['codec']}, each candidate after a local {model.spec} round trip"}
