"""The differentiable view of a video classifier that attacks see.

A network takes fixed-size clips; a user has a video file of any length and size. The view bridges the
two with tensor operations only, so gradients reach the file's own pixels:

1. `ModelView.plan(num_frames)` chooses which frames of the video the model looks at (the clips an
   evaluator would take). Only those frames are turned into float tensors, which keeps a long 1080p
   video inside a few GB.
2. `ModelView.bind(plan)` returns a `BoundModel`: a module mapping the sampled frames
   `(N, T', C, H, W)` in [0, 1] at native resolution to video-level log-probabilities `(N, K)`:
   resize, centre crop and normalize each frame, gather the clips, run the network, and average the
   clips' softmax (the evaluators' aggregate), returned as a log so losses stay stable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from vidattack.video.types import SampledFrames


@dataclass(frozen=True)
class Preprocess:
    """How a network wants its clips: sampling in time, then resize / crop / normalize in space.

    `resize` is the short side (int) or an exact `(height, width)`; `None` keeps the size. `crop` is a
    centre crop (int for square). `layout` is the network's input layout: 3D CNNs take `NCTHW`,
    frame-wise CNN+RNN models `NTCHW`. `rounding` is how a resized long side and a crop offset that
    fall between pixels are rounded: `round` as torchvision does, `floor` as HuggingFace's processors
    do (a 128x171 frame resized to 112 is 112x149 there, 112x150 here), so each model sees the frames
    its own pipeline would give it.
    """

    clip_len: int = 16
    num_clips: int = 1
    frame_stride: int = 1
    resize: int | tuple[int, int] | None = None
    crop: int | tuple[int, int] | None = None
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["NCTHW", "NTCHW"] = "NCTHW"
    rounding: Literal["round", "floor"] = "round"

    def to_dict(self) -> dict[str, object]:
        return {
            "clip_len": self.clip_len,
            "num_clips": self.num_clips,
            "frame_stride": self.frame_stride,
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "crop": list(self.crop) if isinstance(self.crop, tuple) else self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": self.layout,
            # only when not the default: reports, perturbation files and eval keys written before the
            # field existed keep comparing equal
            **({"rounding": self.rounding} if self.rounding != "round" else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Preprocess:
        def size(v: object) -> int | tuple[int, int] | None:
            if v is None or isinstance(v, int):
                return v
            if isinstance(v, list | tuple) and len(v) == 2:
                return (int(v[0]), int(v[1]))
            raise ValueError(f"expected an int, a pair or null for a size, got {v!r}")

        def triple(v: object, default: tuple[float, float, float]) -> tuple[float, float, float]:
            if v is None:
                return default
            if isinstance(v, list | tuple) and len(v) == 3:
                return (float(v[0]), float(v[1]), float(v[2]))
            raise ValueError(f"expected three numbers, got {v!r}")

        layout = d.get("layout", "NCTHW")
        if layout not in ("NCTHW", "NTCHW"):
            raise ValueError(f"expected layout NCTHW or NTCHW, got {layout!r}")
        rounding = d.get("rounding", "round")
        if rounding not in ("round", "floor"):
            raise ValueError(f"expected rounding round or floor, got {rounding!r}")
        return cls(
            clip_len=int(d.get("clip_len", 16)),  # type: ignore[call-overload]
            num_clips=int(d.get("num_clips", 1)),  # type: ignore[call-overload]
            frame_stride=int(d.get("frame_stride", 1)),  # type: ignore[call-overload]
            resize=size(d.get("resize")),
            crop=size(d.get("crop")),
            mean=triple(d.get("mean"), (0.0, 0.0, 0.0)),
            std=triple(d.get("std"), (1.0, 1.0, 1.0)),
            layout=layout,
            rounding=rounding,
        )


@dataclass(frozen=True)
class FramePlan:
    """Which frames of a `num_frames`-long video the model sees, and how they form clips.

    `frame_ids` are sorted, unique video frame indices (length T'); `clips` is `(num_clips, clip_len)`
    of positions into `frame_ids`, so `x[:, clips[k]]` is clip k of the sampled tensor.
    """

    num_frames: int
    frame_ids: tuple[int, ...]
    clips: tuple[tuple[int, ...], ...]

    @property
    def num_sampled(self) -> int:
        return len(self.frame_ids)


def plan_frames(num_frames: int, pre: Preprocess) -> FramePlan:
    """Evaluator-style sampling: `num_clips` clips of `clip_len` frames, `frame_stride` apart, with
    starts spread evenly over the video. Short videos repeat their last frame; identical clips are
    taken once (a 16-frame video seen as 5 clips is one clip)."""
    if num_frames < 1:
        raise ValueError(f"expected a video with at least one frame, got {num_frames}")
    span = (pre.clip_len - 1) * pre.frame_stride + 1
    last_start = max(num_frames - span, 0)
    if pre.num_clips == 1:
        starts = [last_start // 2]
    else:
        starts = [round(i * last_start / (pre.num_clips - 1)) for i in range(pre.num_clips)]
    starts = sorted(set(starts))
    raw = [[min(s + j * pre.frame_stride, num_frames - 1) for j in range(pre.clip_len)] for s in starts]
    frame_ids = sorted({f for clip in raw for f in clip})
    pos = {f: i for i, f in enumerate(frame_ids)}
    clips = tuple(tuple(pos[f] for f in clip) for clip in raw)
    return FramePlan(num_frames=num_frames, frame_ids=tuple(frame_ids), clips=clips)


def _resize_short_side(x: Tensor, size: int | tuple[int, int], floor: bool = False) -> Tensor:
    # x: (B, C, H, W)
    h, w = x.shape[-2:]
    to_int = int if floor else round
    if isinstance(size, tuple):
        new_h, new_w = size
    elif h <= w:
        new_h, new_w = size, max(1, to_int(w * size / h))
    else:
        new_h, new_w = max(1, to_int(h * size / w)), size
    if (new_h, new_w) == (h, w):
        return x
    # antialias matters when shrinking 1080p to 112: without it, the model sees aliased pixels and the
    # perturbation concentrates on the few pixels bilinear sampling happens to read.
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)


def _center_crop(x: Tensor, size: int | tuple[int, int], floor: bool = False) -> Tensor:
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = x.shape[-2:]
    if ch > h or cw > w:
        # pad symmetrically with zeros like torchvision's CenterCrop does for small inputs
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        h, w = x.shape[-2:]
    # rounded like torchvision's center_crop, so a 171-wide frame is cropped from column 30 as it is there
    # (HuggingFace's processors floor instead: `floor`)
    to_int = int if floor else round
    top, left = to_int((h - ch) / 2.0), to_int((w - cw) / 2.0)
    return x[..., top : top + ch, left : left + cw]


@dataclass
class ModelView:
    """A video classifier with its preprocessing, labels and identity.

    `net` maps a clip batch in `preprocess.layout` to logits `(B, K)`. A CNN+RNN net may also define
    `frame_logits(clips) -> (B, L, K)`, its per-timestep predictions, which `BoundModel.frame_log_probs`
    exposes.
    """

    net: nn.Module
    preprocess: Preprocess
    labels: list[str]
    name: str
    sha256: str | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def plan(self, num_frames: int) -> FramePlan:
        return plan_frames(num_frames, self.preprocess)

    def plan_for(self, frames: SampledFrames) -> FramePlan:
        """The plan for a decoded video: `plan(num_frames)`; a remote view's also holds its timing."""
        return self.plan(frames.num_frames)

    def sent_by(self, plan: FramePlan) -> dict[str, Any] | None:
        """What querying the model on `plan` sent over the wire (a remote view's codec, requests and
        bytes: the report's `model.sent`); None for a model in this process."""
        return None

    def bind(self, plan: FramePlan) -> BoundModel:
        return BoundModel(self, plan)

    def to(self, device: torch.device | str) -> ModelView:
        self.net.to(device)
        return self

    def label_of(self, index: int) -> str:
        return self.labels[index] if 0 <= index < len(self.labels) else str(index)


class BoundModel(nn.Module):
    """`ModelView` fixed to one frame plan: `(N, T', C, H, W)` in [0, 1] -> log-probabilities `(N, K)`.

    This is the "model" every attack receives. It is an `nn.Module` so attacks can call it and take
    gradients; its parameters are the network's and are never changed by an attack.
    """

    net: nn.Module
    _clips: Tensor
    _mean: Tensor
    _std: Tensor

    def __init__(self, view: ModelView, plan: FramePlan) -> None:
        super().__init__()
        self.view = view
        self.net = view.net
        self.plan = plan
        pre = view.preprocess
        self.register_buffer("_clips", torch.tensor(plan.clips, dtype=torch.long), persistent=False)
        # one clip of every sampled frame in order (a remote plan, most short videos): gathering it would
        # copy the whole batch into the same order, once per forward pass
        self._whole = len(plan.clips) == 1 and tuple(plan.clips[0]) == tuple(range(plan.num_sampled))
        self.register_buffer("_mean", torch.tensor(pre.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(pre.std).view(1, 3, 1, 1), persistent=False)
        self.to(next(iter(self.net.parameters()), torch.empty(0)).device)
        # Mirror the network's mode: a fresh Module says training=True, and tools that save and restore
        # the mode of the model they are given (torchattacks does) would switch BatchNorm to training.
        self.train(view.net.training)

    @property
    def num_classes(self) -> int:
        return self.view.num_classes

    @property
    def labels(self) -> list[str]:
        return self.view.labels

    def _clip_index(self, t: int) -> Tensor:
        """`(num_clips, L)` positions into `t` sampled frames: the plan's clips, or for a one-clip plan given
        only its first `t` frames, that clip cut to them (the video cut short, as the sparse attack's
        propagation mode scores it)."""
        if t == self.plan.num_sampled:
            return self._clips
        if len(self.plan.clips) != 1 or not 0 < t < self.plan.num_sampled:
            raise ValueError(
                f"expected sampled frames (N, {self.plan.num_sampled}, 3, H, W), or fewer frames for a "
                f"one-clip plan (this plan has {len(self.plan.clips)} clips), got {t} frames"
            )
        clip = self._clips[0]
        return clip[clip < t].view(1, -1)

    def _clip_batch(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(
                f"expected sampled frames (N, {self.plan.num_sampled}, 3, H, W), got {tuple(x.shape)}"
            )
        clip_index = self._clip_index(x.shape[1])
        pre = self.view.preprocess
        n, t, c, h, w = x.shape
        frames = x.reshape(n * t, c, h, w)
        # Spatial preprocessing once per sampled frame, before clips are gathered: overlapping clips
        # share frames, so this is never more work than per clip.
        floor = pre.rounding == "floor"
        if pre.resize is not None:
            frames = _resize_short_side(frames, pre.resize, floor)
        if pre.crop is not None:
            frames = _center_crop(frames, pre.crop, floor)
        frames = (frames - self._mean).div_(self._std)  # in place: one batch-sized tensor, not two
        frames = frames.reshape(n, t, c, *frames.shape[-2:])  # (N, T', C, h, w)
        k, length = clip_index.shape
        whole = self._whole and t == self.plan.num_sampled
        clips = frames if whole else frames[:, clip_index.reshape(-1)]  # (N, K*L, C, h, w)
        clips = clips.reshape(n * k, length, c, *frames.shape[-2:])  # (N*K, L, C, h, w)
        if self.view.preprocess.layout == "NCTHW":
            clips = clips.permute(0, 2, 1, 3, 4)  # (N*K, C, L, h, w)
        return clips

    def forward(self, x: Tensor) -> Tensor:
        """Video-level log-probabilities: log of the mean over clips of each clip's softmax.

        `x` is `(N, T', C, H, W)`, or for a one-clip plan its first `t < T'` frames, scored as the video
        cut to them (networks that take shorter clips, CNN+RNN or globally pooled 3D CNNs, accept it).
        """
        n = x.shape[0]
        logits = self.net(self._clip_batch(x))  # (N*K, classes)
        log_p = F.log_softmax(logits.float(), dim=-1).reshape(n, -1, logits.shape[-1])
        return torch.logsumexp(log_p, dim=1) - math.log(log_p.shape[1])

    @property
    def has_frame_predictions(self) -> bool:
        return callable(getattr(self.net, "frame_logits", None))

    def frame_log_probs(self, x: Tensor) -> Tensor:
        """Per-frame log-probabilities `(N, T', K)` for nets with per-timestep outputs (CNN+RNN).

        A frame in several clips gets the mean of its softmax over those clips.
        """
        if not self.has_frame_predictions:
            raise ValueError(f"model {self.view.name} has no frame-level predictions")
        n = x.shape[0]
        k, length = self._clips.shape
        per_step = self.net.frame_logits(self._clip_batch(x))  # type: ignore[operator]
        probs = F.softmax(per_step.float(), dim=-1).reshape(n, k * length, -1)  # (N, K*L, classes)
        t = self.plan.num_sampled
        sums = probs.new_zeros(n, t, probs.shape[-1])
        counts = probs.new_zeros(t)
        idx = self._clips.reshape(-1)
        sums.index_add_(1, idx, probs)
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=probs.dtype))
        return torch.log(sums / counts.clamp_min(1).view(1, t, 1) + 1e-12)


def sampled_frames(frames_uint8: Tensor, plan: FramePlan, device: torch.device | str = "cpu") -> Tensor:
    """The float tensor `(1, T', C, H, W)` in [0, 1] of the frames a plan samples from `(T, H, W, 3)`."""
    idx = torch.tensor(plan.frame_ids, dtype=torch.long)
    x = frames_uint8.index_select(0, idx).to(device)  # (T', H, W, 3) uint8
    return x.permute(0, 3, 1, 2).float().div_(255.0).unsqueeze(0)


def predict_video(view: ModelView, frames_uint8: Tensor, device: torch.device | str = "cpu") -> Tensor:
    """Video-level probabilities `(K,)` of a decoded video `(T, H, W, 3)` uint8, the usual way."""
    plan = view.plan(frames_uint8.shape[0])
    bound = view.bind(plan)
    with torch.no_grad():
        return bound(sampled_frames(frames_uint8, plan, device)).exp()[0]


def check_labels(labels: Sequence[str], num_classes: int, source: str) -> list[str]:
    """Labels for a network with `num_classes` outputs: the given ones if they fit, else `class_i`."""
    labels = list(labels)
    if labels and len(labels) != num_classes:
        raise ValueError(f"expected {num_classes} labels from {source}, got {len(labels)}")
    return labels or [f"class_{i}" for i in range(num_classes)]
