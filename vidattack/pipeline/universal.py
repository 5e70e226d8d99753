"""Universal perturbations over many video files: learn one, and measure its fooling rate.

The multi-video side of `vidattack.attacks.universal`: each video (uint8 frames or a file path, decoded
here) is sampled the way the model sees it (`vidattack.pipeline.stages.sample`), `UniversalAttack.learn`
learns one perturbation on all of them, and `evaluate_universal` applies a perturbation to each
video exactly as `vidattack perturb --apply` does and classifies the result.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from vidattack.attacks.context import StepFn
from vidattack.attacks.universal import TrainingClip, UniversalAttack, UniversalPerturbation
from vidattack.errors import BadParameterError
from vidattack.models.view import ModelView, sampled_frames

VideoSource = Tensor | str | os.PathLike[str]


def _as_frames(video: VideoSource) -> Tensor:
    if isinstance(video, Tensor):
        if video.dtype != torch.uint8 or video.dim() != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            raise BadParameterError(
                f"expected a video as uint8 frames (T, H, W, 3), got {video.dtype} {tuple(video.shape)}"
            )
        return video
    from vidattack.video import DEFAULT_MAX_MEMORY, load_video

    # every frame (a perturbation spans the whole video), refused from its header when it cannot fit
    return load_video(video, budget_bytes=DEFAULT_MAX_MEMORY).frames


def _device_of(view: ModelView) -> torch.device:
    return next(iter(view.net.parameters()), torch.empty(0)).device


def _training_clips(
    videos: Sequence[VideoSource], view: ModelView, labels: Sequence[int] | None, target: int | None
) -> list[TrainingClip]:
    # one video decoded at a time: only its sampled clip is kept
    if labels is not None and len(labels) != len(videos):
        raise BadParameterError(f"expected one label per video ({len(videos)}), got {len(labels)}")
    device = _device_of(view)
    clips = []
    for i, video in enumerate(videos):
        frames = _as_frames(video)
        plan = view.plan(int(frames.shape[0]))
        bound = view.bind(plan)
        x = sampled_frames(frames, plan, device)
        if target is not None:
            label = int(target)
        elif labels is not None:
            label = int(labels[i])
        else:
            with torch.no_grad():
                label = int(bound(x).argmax(dim=1))
        clips.append(TrainingClip(x=x, model=bound, label=label))
    return clips


def learn_universal(
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    attack: UniversalAttack | None = None,
    labels: Sequence[int] | None = None,
    target: int | None = None,
    shape: tuple[int, int, int] | None = None,
    seed: int = 0,
    progress: StepFn | None = None,
    **params: Any,
) -> UniversalPerturbation:
    """Learn one perturbation that fools `model_view` on `videos` (paper eq. 2-3, or eq. 4 with `target`).

    Args:
        videos: uint8 frames `(T, H, W, 3)` or paths of video files; sizes and lengths may differ.
        model_view: the classifier (`vidattack.models.load_model`), on the device to use.
        attack: the settings, as a `UniversalAttack` (`get_attack("universal", lam=...)`); keyword
            `params` (lam=, lr=, epochs=, frames=, norm=, batch_size=, patience=, init=) override them.
        labels: the true class of each video for the untargeted loss (default: the clean predictions).
        target: a class index to reach instead (targeted).
        shape: the perturbation's `(T_p, H_p, W_p)` (default: the first video's sampled frames and size).
        seed: seeds the batch order and a `random:K` frame mask.
        progress: called with (epochs done, epochs).
    """
    if not videos:
        raise BadParameterError("expected at least one training video, got none")
    base = attack or UniversalAttack()
    settings = UniversalAttack(**{**base.hyperparameters(), **params}) if params else base
    if target is not None and not 0 <= int(target) < model_view.num_classes:
        raise BadParameterError(f"expected a target class in [0, {model_view.num_classes - 1}], got {target}")
    clips = _training_clips(videos, model_view, labels, target)
    _, t0, _, h0, w0 = clips[0].x.shape
    learned = settings.learn(
        clips,
        shape=shape if shape is not None else (int(t0), int(h0), int(w0)),
        targeted=target is not None,
        generator=torch.Generator().manual_seed(int(seed)),
        progress=progress,
    )
    return UniversalPerturbation(
        delta=learned.delta.permute(0, 2, 3, 1).cpu().contiguous(),
        frames=learned.frames,
        model=model_view.name,
        preprocess=model_view.preprocess,
        params={
            **settings.hyperparameters(),
            "seed": seed,
            "target": target,
            "videos": len(clips),
            "epochs_run": learned.epochs_run,
        },
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        stats={"final_loss": learned.final_loss},
    )


@dataclass
class FoolingEvaluation:
    """Fooling rate of a universal perturbation on a set of videos.

    `rate` = fooled / counted, where counted are the videos the model classifies correctly when clean
    (all of them when no labels are given: the clean prediction is the label), and fooled those whose
    adversarial prediction differs from the label (untargeted) or equals `target` (targeted).
    """

    rate: float
    fooled: int
    counted: int
    total: int
    clean_predictions: list[int]
    adversarial_predictions: list[int]
    map: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fooling_rate": self.rate,
            "fooled": self.fooled,
            "counted": self.counted,
            "total": self.total,
            "clean_predictions": self.clean_predictions,
            "adversarial_predictions": self.adversarial_predictions,
            "map": self.map,
        }


def evaluate_universal(
    perturbation: UniversalPerturbation,
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    labels: Sequence[int] | None = None,
    target: int | None = None,
) -> FoolingEvaluation:
    """Apply `perturbation` to each video exactly as `vidattack perturb --apply` does (8-bit), classify it."""
    if labels is not None and len(labels) != len(videos):
        raise BadParameterError(f"expected one label per video ({len(videos)}), got {len(labels)}")
    device = _device_of(model_view)
    clean_preds, adv_preds, maps = [], [], []
    fooled = counted = 0
    for i, video in enumerate(videos):
        frames = _as_frames(video)
        adv = perturbation.apply(frames)
        plan = model_view.plan(int(frames.shape[0]))
        bound = model_view.bind(plan)
        with torch.no_grad():
            clean = int(bound(sampled_frames(frames, plan, device)).argmax(dim=1))
            pred = int(bound(sampled_frames(adv, plan, device)).argmax(dim=1))
        label = int(labels[i]) if labels is not None else clean
        clean_preds.append(clean)
        adv_preds.append(pred)
        maps.append(float((adv.float() - frames.float()).abs().mean() / 255.0))
        if clean != label:
            continue
        counted += 1
        fooled += int(pred == target) if target is not None else int(pred != label)
    return FoolingEvaluation(
        rate=fooled / counted if counted else 0.0,
        fooled=fooled,
        counted=counted,
        total=len(videos),
        clean_predictions=clean_preds,
        adversarial_predictions=adv_preds,
        map=sum(maps) / len(maps) if maps else 0.0,
    )


def fooling_rate(
    perturbation: UniversalPerturbation,
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    labels: Sequence[int] | None = None,
    target: int | None = None,
) -> float:
    """Share of the correctly classified `videos` that `perturbation` fools (see `FoolingEvaluation`)."""
    return evaluate_universal(perturbation, videos, model_view, labels=labels, target=target).rate
