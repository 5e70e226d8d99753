"""Training-ready clips: every item of a data set decoded once, sampled by the model's frame plan and
resized/cropped to the network's resolution, so batches are uniform tensors and the attack perturbs the
pixels the network sees."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from vidattack.errors import BadParameterError
from vidattack.models.view import FramePlan, Preprocess, _center_crop, _resize_short_side, plan_frames
from vidattack.train.config import TrainEventFn


@dataclass
class ClipSet:
    """Training-ready clips: `frames` `(N, T', H, W, 3)` uint8 at the network's resolution, `labels`
    `(N,)`, and the frame plan that lays the T' frames out as clips."""

    frames: Tensor
    labels: Tensor
    plan: FramePlan

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Float clips `(B, T', 3, H, W)` in [0, 1] and labels `(B,)`."""
        x = self.frames[idx].permute(0, 1, 4, 2, 3).contiguous().float().div_(255.0)
        return x, self.labels[idx]

    def subset(self, n: int) -> ClipSet:
        return ClipSet(self.frames[:n], self.labels[:n], self.plan)


def training_preprocess(pre: Preprocess) -> Preprocess:
    """The preprocessing of clips `prepare_clips` already resized and cropped: normalisation only."""
    return replace(pre, resize=None, crop=None)


def prepare_clips(
    dataset: Any,
    preprocess: Preprocess,
    *,
    progress: TrainEventFn | None = None,
    what: str = "train",
) -> ClipSet:
    """Decode (or render) every item of a `vidattack.data.datasets.Dataset`, sample the frames the model
    sees and resize/crop them as `preprocess` says. Clips are laid out one after another (clip k is
    frames k*L .. k*L+L-1); a short video with fewer distinct clips repeats its first."""
    length, k = preprocess.clip_len, preprocess.num_clips
    out: Tensor | None = None
    labels = torch.empty(len(dataset), dtype=torch.long)
    for i, item in enumerate(dataset):
        video = item.load_frames()  # (T, H, W, 3) uint8
        plan = plan_frames(int(video.shape[0]), preprocess)
        clips = list(plan.clips) + [plan.clips[0]] * (k - len(plan.clips))
        order = [plan.frame_ids[p] for clip in clips for p in clip]
        frames = video.index_select(0, torch.tensor(order)).permute(0, 3, 1, 2).float()  # (K*L, 3, H, W)
        if preprocess.resize is not None:
            frames = _resize_short_side(
                frames, preprocess.resize, preprocess.rounding == "floor", preprocess.resample
            )
        if preprocess.crop is not None:
            frames = _center_crop(frames, preprocess.crop, preprocess.rounding == "floor")
        if out is None:
            out = torch.empty(len(dataset), k * length, *frames.shape[-2:], 3, dtype=torch.uint8)
        elif tuple(frames.shape[-2:]) != tuple(out.shape[2:4]):
            # mixed aspect ratios under a short-side resize without crop: cut to the first item's size
            frames = _center_crop(frames, (int(out.shape[2]), int(out.shape[3])))
        out[i] = frames.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        labels[i] = int(item.label)
        if progress is not None:
            progress({"event": "load", "what": what, "done": i + 1, "total": len(dataset)})
    if out is None:
        raise BadParameterError(f"expected a {what} data set with at least one video, got none")
    plan = FramePlan(
        num_frames=k * length,
        frame_ids=tuple(range(k * length)),
        clips=tuple(tuple(range(j * length, (j + 1) * length)) for j in range(k)),
    )
    return ClipSet(out, labels, plan)
