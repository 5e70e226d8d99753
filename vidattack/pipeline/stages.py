"""The stages of one job, each a function with typed input and output, testable alone.

    decode(path, view, max_memory) -> SampledFrames                # the model's frames only, bounded
    sample(frames, view, attack, device) -> Sampled                # clip tensor, bound model, start
    run_attack(sampled, attack, target, seed, progress) -> AttackOutcome   # pure tensors
    write(frames, sampled, outcome, path, overwrite) -> Path       # lossless file, streamed, atomic
    verify(frames, written, sampled, view, ...) -> Verified        # decode what was written once
    render(RenderJob(frames, comparison.written, stats, outputs, ...))  # heatmaps, plots (render/)

Memory is bounded before decoding: `decode` plans the model's frames on the container's declared
frame count and refuses (one line, `BadVideoError`) a video whose sample would not fit `max_memory`;
only the sampled frames are kept (the whole video too when it is small, `KEEP_ALL_BYTES`), and writing,
verifying and the heatmap video stream the rest frame by frame (`vidattack.video`).

`vidattack.pipeline.run` runs them in order for one job. They share no state beyond their arguments, so a
batch engine can run them per video in workers and overlap them (decode the next video while this one
is attacked; write and render the last one meanwhile). Only `run_attack` needs the accelerator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vidattack.errors import VidattackError
from vidattack.pipeline.report import Prediction, prediction, reportable
from vidattack.pipeline.spec import judge

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.attacks.context import StepFn
    from vidattack.attacks.result import AttackResult
    from vidattack.models.view import BoundModel, FramePlan, ModelView
    from vidattack.video import Comparison, SampledFrames


# -- decode and sample ----------------------------------------------------------------------------


def decode(path: str | os.PathLike[str], view: ModelView, *, max_memory: int | None = None) -> SampledFrames:
    """The frames of the video at `path` that `view` samples, decoded in one streaming pass, with the
    whole video's timing (`BadVideoError` for anything that is not a readable video).

    `max_memory` (bytes; None: the video layer's `DEFAULT_MAX_MEMORY`) refuses, from the container's
    header and before decoding, a video whose sample would not fit.
    """
    from vidattack.video import DEFAULT_MAX_MEMORY, decode_planned

    budget = DEFAULT_MAX_MEMORY if max_memory is None else max_memory
    return decode_planned(path, lambda n: view.plan(n).frame_ids, budget_bytes=budget)


@dataclass(frozen=True)
class Sampled:
    """What the model sees of one video: the frame plan, the model bound to it, the sampled clip
    tensor `x` `(1, T', C, H, W)` in [0, 1] on the device, and the attack's starting points (or None)."""

    plan: FramePlan
    model: BoundModel
    x: Tensor
    starting_points: Tensor | None


def plan_of(frames: SampledFrames, view: ModelView) -> FramePlan:
    """`view`'s frame plan for the decoded video, which must be the frames `decode` kept."""
    plan = view.plan_for(frames)
    if tuple(plan.frame_ids) != tuple(frames.frame_ids):
        raise VidattackError(
            f"expected the frames {list(plan.frame_ids)} the model samples, got {list(frames.frame_ids)}"
        )
    return plan


def clip_tensor(frames: Tensor, device: torch.device | str = "cpu") -> Tensor:
    """The float clip `(1, T', C, H, W)` in [0, 1] of sampled uint8 frames `(T', H, W, 3)`."""
    return frames.to(device).permute(0, 3, 1, 2).float().div_(255.0).unsqueeze(0)


def sample(frames: SampledFrames, view: ModelView, attack: Attack | None, device: torch.device) -> Sampled:
    """The clip `view` looks at, at native resolution, onto `device`, and the model bound to its plan.

    Starting points are the attack's own (V-BAD's `target_video`), decoded here because attacks
    never open files.
    """
    from vidattack.starting_points import starting_points

    plan = plan_of(frames, view)
    x = clip_tensor(frames.frames, device)
    starts = starting_points(attack, plan, x) if attack is not None else None
    return Sampled(plan, view.bind(plan), x, starts)


# -- attack ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackOutcome:
    """The attack's result on the sampled clip, and its adversarial frames as the file will hold them:
    `frames` `(T', H, W, 3)` uint8 on the CPU, in the order of the plan's frame ids."""

    result: AttackResult
    frames: Tensor
    seconds: float


def run_attack(
    sampled: Sampled,
    attack: Attack,
    *,
    target: int | None = None,
    seed: int = 0,
    progress: StepFn | None = None,
    stop_when_fooled: float | None = None,
) -> AttackOutcome:
    """Run `attack` on the sampled clip. Pure tensors: the only stage that needs the accelerator."""
    return run_attack_batch(
        [sampled], attack, target=target, seed=seed, progress=progress, stop_when_fooled=stop_when_fooled
    )[0]


def batch_key(sampled: Sampled, attack: Attack) -> tuple[Any, ...] | None:
    """Videos with equal keys can be attacked in one call (`run_attack_batch`); None: only alone.

    Same clip shape and frame plan (so one bound model and one frame numbering serve all), an attack
    that is `batchable`, and no per-video starting points."""
    if not attack.batchable or sampled.starting_points is not None:
        return None
    return (tuple(sampled.x.shape[1:]), str(sampled.x.device), sampled.plan)


def run_attack_batch(
    batch: list[Sampled],
    attack: Attack,
    *,
    target: int | None = None,
    seed: int = 0,
    progress: StepFn | None = None,
    stop_when_fooled: float | None = None,
    max_queries: int | None = None,
) -> list[AttackOutcome]:
    """Run `attack` once on the clips of several videos with the same `batch_key`, stacked `(N, ...)`:
    one forward and backward per step for all of them. Each video gets its own outcome, equal to
    attacking it alone at the same seed (each video has its own generator, queries and early stop;
    the model's arithmetic may differ in the last bits with the batch size, see `AttackResult.split`).
    Each outcome's `seconds` is its share of the batch's time. `max_queries` caps a black-box attack's
    queries per video below its own budget (None: its own)."""
    import time

    start = time.perf_counter()
    if len(batch) == 1:
        results = [
            _call_attack(
                attack,
                batch[0],
                target=target,
                seed=seed,
                progress=progress,
                stop=stop_when_fooled,
                cap=max_queries,
            )
        ]
    else:
        keys = {batch_key(s, attack) for s in batch}
        if None in keys or len(keys) != 1:
            raise ValueError(
                "expected videos with one batch key (same clip shape and plan, batchable attack)"
            )
        x = torch.cat([s.x for s in batch])  # (N, T', C, H, W)
        stacked = Sampled(batch[0].plan, batch[0].model, x, None)
        results = _call_attack(
            attack,
            stacked,
            target=target,
            seed=seed,
            progress=progress,
            stop=stop_when_fooled,
            cap=max_queries,
        ).split()
    share = (time.perf_counter() - start) / len(batch)
    outcomes = []
    for result in results:
        frames = (result.adversarial[0] * 255.0).round().clamp(0, 255).to(torch.uint8)  # (T', C, H, W)
        outcomes.append(AttackOutcome(result, frames.permute(0, 2, 3, 1).cpu(), share))
    return outcomes


def _call_attack(
    attack: Attack,
    sampled: Sampled,
    *,
    target: int | None,
    seed: int,
    progress: StepFn | None,
    stop: float | None,
    cap: int | None = None,
) -> AttackResult:
    # The frame plan reaches the attack through the bound model, never as arguments.
    kwargs: dict[str, Any] = {}
    if cap is not None:
        kwargs["max_queries"] = cap
    if sampled.starting_points is not None:
        kwargs["starting_points"] = sampled.starting_points
    if stop is not None:
        kwargs["stop_when_fooled"] = stop
    return attack(sampled.model, sampled.x, target=target, seed=seed, progress=progress, **kwargs)


# -- write, verify -------------------------------------------------------------------------------


def write(
    frames: SampledFrames, sampled: Sampled, outcome: AttackOutcome, path: Path, *, overwrite: bool
) -> Path:
    """Encode the whole video losslessly to `path` with the adversarial frames in place of the sampled
    ones, streaming (the source is decoded again frame by frame unless it was kept whole)."""
    from vidattack.video import rewrite

    return rewrite(frames, path, frames.replacements(outcome.frames), overwrite=overwrite)


@dataclass(frozen=True)
class Verified:
    """The written file judged like any user of it would: decoded again and classified.

    `comparison` is the one decode of the written file (`vidattack.video.compare`): its `written` holds
    the written frames the model samples (the whole written video too, when small); `stats` the
    perturbation measured on every frame, as the report holds it (`reportable`); `frame_predictions`
    the per-frame labels of CNN+RNN models.
    """

    comparison: Comparison
    reencoded: Prediction
    success_after_encode: bool
    stats: dict[str, Any]
    frame_predictions: dict[str, Any] | None

    @property
    def frames(self) -> Tensor:
        """The written file's sampled frames `(T', H, W, 3)` uint8."""
        return self.comparison.written.frames


def verify(
    frames: SampledFrames,
    written: Path,
    sampled: Sampled,
    view: ModelView,
    device: torch.device,
    *,
    clean_index: int,
    target: int | None,
) -> Verified:
    """Decode `written` once beside the source (same length and frame size, else `VidattackError`),
    classify its sampled frames and measure the perturbation on every frame. With `--robust-to` on a
    deployed model the written frames are classified as the service will see them, delivered with
    the judged draw (`MeteredDeliveryModel.judged`: the cache answers when the file holds the judged
    video)."""
    from vidattack.delivery.simulate import MeteredDeliveryModel
    from vidattack.video import KEEP_ALL_BYTES, compare

    # a video small enough to have been kept whole keeps its written copy too, for the heatmap video
    keep = KEEP_ALL_BYTES if frames.all_frames is not None else 0
    comparison = compare(frames, written, keep_all_bytes=keep)
    adv_x = clip_tensor(comparison.written.frames, device)
    with torch.no_grad():
        if isinstance(sampled.model, MeteredDeliveryModel):
            probs = sampled.model.judged(adv_x).exp()[0]
        else:
            probs = view.bind(sampled.plan)(adv_x).exp()[0]  # as `predict_frames` classifies any video
    reencoded = prediction(probs, view.labels, is_log=False)
    return Verified(
        comparison=comparison,
        reencoded=reencoded,
        success_after_encode=judge(reencoded.index, clean_index, target),
        stats=reportable(comparison.stats()),
        frame_predictions=frame_predictions(view, sampled.x, adv_x, sampled.plan),
    )


def predict_frames(
    view: ModelView, frames: SampledFrames, device: torch.device, top_k: int = 5
) -> Prediction:
    """The model's video-level prediction for a video decoded by `decode` (its sampled frames)."""
    plan = plan_of(frames, view)
    with torch.no_grad():
        probs = view.bind(plan)(clip_tensor(frames.frames, device)).exp()[0]
    return prediction(probs, view.labels, top_k=top_k, is_log=False)


def frame_predictions(view: ModelView, clean: Tensor, adv: Tensor, plan: FramePlan) -> dict[str, Any] | None:
    """Per-frame labels of clean and adversarial clips, for models that predict per frame (else None)."""
    bound = view.bind(plan)
    if not bound.has_frame_predictions:
        return None
    with torch.no_grad():
        c = bound.frame_log_probs(clean).argmax(-1)[0].tolist()
        a = bound.frame_log_probs(adv).argmax(-1)[0].tolist()
    flipped = [f for f, ci, ai in zip(plan.frame_ids, c, a, strict=True) if ci != ai]
    return {
        "frames": list(plan.frame_ids),
        "clean": [view.label_of(i) for i in c],
        "adversarial": [view.label_of(i) for i in a],
        "flipped": flipped,
    }


def unchanged_stats(video: SampledFrames, adversarial: Tensor) -> dict[str, Any]:
    """The perturbation of a video whose sampled frames became `adversarial` `(T', H, W, 3)` uint8 and
    whose other frames are unchanged, as `verify` measures it over the whole written video."""
    from vidattack.video.compare import FrameDiff, frame_diff, summarize

    changed = {
        i: frame_diff(c, a) for i, c, a in zip(video.frame_ids, video.frames, adversarial, strict=True)
    }
    same = FrameDiff(0, 0, 0, 1.0, video.height * video.width * 3)
    return reportable(summarize([changed.get(i, same) for i in range(video.num_frames)]))
