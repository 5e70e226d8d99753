"""The stages of one job, each a function with typed input and output, testable alone.

    decode(path) -> Video                                        # PyAV, the whole video as uint8
    sample(video, view, attack, device) -> Sampled               # the model's frames, bound model, start
    run_attack(sampled, attack, target, seed, progress) -> AttackOutcome   # pure tensors
    write(video, sampled, outcome, path, overwrite) -> Path      # lossless file, atomic
    verify(video, written, sampled, view, ...) -> Verified       # decode what was written, classify it
    render(video, verified, history, outputs, title, overwrite) -> Rendered   # heatmaps and plots

`perturb_file` runs them in order for one video. They share no state beyond their arguments, so a
batch engine can run them per video in workers and overlap them (decode the next video while this one
is attacked; write and render the last one meanwhile). Only `run_attack` needs the accelerator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vidattack.errors import OutputExistsError, VidattackError
from vidattack.pipeline.report import Prediction, perturbation_stats, prediction

ProgressFn = Callable[[int, int], None]

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack, AttackResult
    from vidattack.models.view import BoundModel, FramePlan, ModelView
    from vidattack.video import Video


@dataclass(frozen=True)
class Outputs:
    """The files one job writes, named S (see `vidattack.pipeline.outputs` for how S is chosen), and
    which kinds of them the job writes (`kinds`, a subset of `adv`, `report`, `heatmaps`, `plots`)."""

    adversarial: Path
    heatmap_video: Path
    heatmap_png: Path
    frames_plot: Path
    curve_plot: Path
    report: Path
    kinds: frozenset[str] = frozenset({"adv", "report", "heatmaps", "plots"})

    @classmethod
    def for_stem(cls, out_dir: Path, stem: str, kinds: Iterable[str] | None = None) -> Outputs:
        """The set named `stem` in `out_dir` (every kind unless `kinds`)."""
        chosen = frozenset(kinds) if kinds is not None else frozenset({"adv", "report", "heatmaps", "plots"})
        return cls(
            adversarial=out_dir / f"{stem}.adv.mp4",
            heatmap_video=out_dir / f"{stem}.heatmap.mp4",
            heatmap_png=out_dir / f"{stem}.heatmap.png",
            frames_plot=out_dir / f"{stem}.frames.png",
            curve_plot=out_dir / f"{stem}.curve.png",
            report=out_dir / f"{stem}.report.json",
            kinds=chosen,
        )

    @property
    def folder(self) -> Path:
        return self.report.parent

    @property
    def name(self) -> str:
        """S, the name the set's files share."""
        return self.report.name.removesuffix(".report.json")

    @property
    def lock(self) -> Path:
        """The lock file held while a job writes this set (`.S.lock`)."""
        from vidattack.pipeline.locks import lock_path

        return lock_path(self.folder, self.name)

    def by_kind(self) -> dict[str, tuple[Path, ...]]:
        return {
            "adv": (self.adversarial,),
            "heatmaps": (self.heatmap_video, self.heatmap_png),
            "plots": (self.frames_plot, self.curve_plot),
            "report": (self.report,),
        }

    def all(self) -> tuple[Path, ...]:
        """Every path of the set, chosen or not, report last."""
        return tuple(p for paths in self.by_kind().values() for p in paths)

    def chosen(self) -> tuple[Path, ...]:
        """The paths of the chosen kinds, report last."""
        return tuple(p for kind, paths in self.by_kind().items() if kind in self.kinds for p in paths)

    def required(self) -> tuple[Path, ...]:
        """The chosen paths every finished job has written (the curve only exists for attacks with a
        history)."""
        return tuple(p for p in self.chosen() if p != self.curve_plot)

    def wants(self, kind: str) -> bool:
        return kind in self.kinds

    def with_scratch(self) -> Outputs:
        """The same set with every path of a kind not chosen replaced by a hidden temp name beside it.

        The stages write every file they make (verify needs the written video; render draws heatmaps
        and plots together); the job removes the scratch files afterwards.
        """
        from vidattack.files import temp_path_beside

        # TODO(merge): let render take the chosen kinds and skip what is not wanted instead.
        kept = set(self.chosen())
        fields = {
            "adversarial": self.adversarial,
            "heatmap_video": self.heatmap_video,
            "heatmap_png": self.heatmap_png,
            "frames_plot": self.frames_plot,
            "curve_plot": self.curve_plot,
            "report": self.report,
        }
        return Outputs(
            **{k: (p if p in kept else temp_path_beside(p)) for k, p in fields.items()}, kinds=self.kinds
        )

    def check_free(self, overwrite: bool) -> None:
        """Refuse to start when any chosen output exists, unless `overwrite`: never replace a file silently."""
        if overwrite:
            return
        for p in self.chosen():
            if p.exists():
                raise OutputExistsError(f"{p} exists (use --overwrite to replace it)")


def resolve_target(view: ModelView, target: str | int | None) -> int | None:
    """A `--target` label or index as a class index of `view` (None stays None)."""
    from vidattack.criteria import resolve_target as resolve

    return None if target is None else resolve(view, target)


# -- decode and sample ----------------------------------------------------------------------------


def decode(path: str | os.PathLike[str], *, max_memory: int | None = None) -> Video:
    """The video at `path`, decoded (BadVideoError for anything that is not a readable video).

    `max_memory` (bytes; None: the video layer's default) bounds what decoding may hold.
    """
    from vidattack.video import load_video

    if max_memory is None:
        return load_video(path)
    # TODO(merge): the streaming video layer takes `max_memory`; until it lands the budget is not applied.
    import inspect

    if "max_memory" in inspect.signature(load_video).parameters:
        return load_video(path, max_memory=max_memory)  # type: ignore[call-arg,unused-ignore]
    return load_video(path)


@dataclass(frozen=True)
class Sampled:
    """What the model sees of one video: the frame plan, the model bound to it, the sampled clip
    tensor `x` `(1, T', C, H, W)` in [0, 1] on the device, and the attack's starting points (or None)."""

    plan: FramePlan
    model: BoundModel
    x: Tensor
    starting_points: Tensor | None


def sample(video: Video, view: ModelView, attack: Attack | None, device: torch.device) -> Sampled:
    """Sample the frames `view` looks at from `video`, at native resolution, onto `device`.

    Starting points are the attack's own (V-BAD's `target_video`), decoded here because attacks
    never open files.
    """
    from vidattack.models.view import sampled_frames

    plan = view.plan(video.num_frames)
    starts = _starting_points(attack, view, plan, device) if attack is not None else None
    return Sampled(plan, view.bind(plan), sampled_frames(video.frames, plan, device), starts)


def _starting_points(attack: Attack, view: ModelView, plan: FramePlan, device: torch.device) -> Tensor | None:
    # TODO(merge): call vidattack.starting_points.starting_points directly (the black-box engineer's
    # module); this branch does not have it yet.
    try:
        from vidattack.starting_points import starting_points  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    result: Tensor | None = starting_points(attack, view, plan, device)
    return result


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
    progress: ProgressFn | None = None,
) -> AttackOutcome:
    """Run `attack` on the sampled clip. Pure tensors: the only stage that needs the accelerator."""
    import time

    start = time.perf_counter()
    result = _call_attack(attack, sampled, target=target, seed=seed, progress=progress)
    frames = (result.adversarial[0] * 255.0).round().clamp(0, 255).to(torch.uint8)  # (T', C, H, W)
    return AttackOutcome(result, frames.permute(0, 2, 3, 1).cpu(), time.perf_counter() - start)


def _call_attack(
    attack: Attack, sampled: Sampled, *, target: int | None, seed: int, progress: ProgressFn | None
) -> AttackResult:
    # The frame plan reaches the attack through the bound model, never as arguments.
    kwargs: dict[str, Any] = {}
    if sampled.starting_points is not None:
        kwargs["starting_points"] = sampled.starting_points
    return attack(sampled.model, sampled.x, target=target, seed=seed, progress=progress, **kwargs)


# -- write, verify -------------------------------------------------------------------------------


def write(video: Video, sampled: Sampled, outcome: AttackOutcome, path: Path, *, overwrite: bool) -> Path:
    """Put the adversarial frames back into the full video and encode it losslessly to `path`."""
    from vidattack.video import save_video

    frames = video.frames.clone()
    frames[list(sampled.plan.frame_ids)] = outcome.frames
    return save_video(video.with_frames(frames), path, overwrite=overwrite)


@dataclass(frozen=True)
class Verified:
    """The written file judged like any user of it would: decoded again and classified.

    `frames` are the decoded adversarial frames `(T, H, W, 3)` uint8; `stats` the perturbation measured
    on them (`perturbation_stats`); `frame_predictions` the per-frame labels of CNN+RNN models.
    """

    frames: Tensor
    reencoded: Prediction
    success_after_encode: bool
    stats: dict[str, Any]
    frame_predictions: dict[str, Any] | None


def verify(
    video: Video,
    written: Path,
    sampled: Sampled,
    view: ModelView,
    device: torch.device,
    *,
    clean_index: int,
    target: int | None,
) -> Verified:
    """Decode `written`, check it has the input's shape, classify it and measure the perturbation."""
    from vidattack.models.view import sampled_frames

    frames = decode(written).frames
    if frames.shape != video.frames.shape:
        raise VidattackError(
            f"the written video decodes to {tuple(frames.shape)}, expected {tuple(video.frames.shape)}"
        )
    reencoded = predict_frames(view, frames, device)
    adv_x = sampled_frames(frames, sampled.plan, device)
    return Verified(
        frames=frames,
        reencoded=reencoded,
        success_after_encode=judge(reencoded.index, clean_index, target),
        stats=perturbation_stats(video.frames, frames),
        frame_predictions=frame_predictions(view, sampled.x, adv_x, sampled.plan),
    )


def judge(index: int, clean_index: int, target: int | None) -> bool:
    """Success: the target class when targeted, any other class than the clean one when not."""
    return index == target if target is not None else index != clean_index


def predict_frames(view: ModelView, frames: Tensor, device: torch.device, top_k: int = 5) -> Prediction:
    """The model's video-level prediction for decoded frames `(T, H, W, 3)` uint8."""
    from vidattack.models.view import predict_video

    return prediction(predict_video(view, frames, device), view.labels, top_k=top_k, is_log=False)


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
