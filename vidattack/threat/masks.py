"""Where an attack may change a video: one region description, and the frame selection it carries.

A `Region` is a shape drawn on each frame (a `Rectangle`, a `Border`, scattered `Pixels`, or the whole
frame) on a set of frames. `Region.mask(video)` is the bool tensor, broadcastable to the video
`(N, T, C, H, W)`, that a threat model takes as its `mask` (True = may change). Sizes are in the
video's own pixels, before the model view resizes or crops.

Which frames: a `FrameSpec` is the `frames` hyperparameter parsed once (`all`, `K`, `random:K`,
`0,3,7`, in the video's own frame numbers); `FrameSpec.select(plan, generator)` turns it into a
`(T,)` bool vector over the frames a model samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from vidattack.errors import BadParameterError


class FrameSelection(Protocol):
    """What a frame selection needs to know of a model's frame plan (a `FramePlan`, an `AttackContext`)."""

    @property
    def frame_ids(self) -> tuple[int, ...]: ...

    @property
    def num_frames(self) -> int: ...


_FRAMES_HELP = "all, K, random:K or a list like 0,3,7"


@dataclass(frozen=True)
class FrameSpec:
    """Which frames of a video an attack may touch, in the video's own frame numbers.

    `kind` is `all`, `first` (the first `count` frames), `random` (`count` frames drawn with the
    attack's generator) or `list` (`frames`). Parse text with `FrameSpec.parse`; `str()` gives it back.
    """

    kind: Literal["all", "first", "random", "list"] = "all"
    count: int = 0
    frames: tuple[int, ...] = ()

    @classmethod
    def parse(cls, spec: str | FrameSpec | None) -> FrameSpec:
        """`None`/`all`, `K`, `random:K` or `0,3,7` (also `[0, 3, 7]`); raises BadParameterError."""
        if isinstance(spec, FrameSpec):
            return spec
        text = "" if spec is None else str(spec).strip().lower()
        try:
            if text in ("", "all"):
                return cls()
            if text.startswith("random:"):
                return cls("random", count=cls._positive(int(text.split(":", 1)[1]), spec))
            if "," in text or text.startswith("["):
                frames = sorted({int(v) for v in text.strip("[]").split(",") if v.strip()})
                if not frames or frames[0] < 0:
                    raise ValueError
                return cls("list", frames=tuple(frames))
            return cls("first", count=cls._positive(int(text), spec))
        except ValueError:
            raise BadParameterError(f"expected frames as {_FRAMES_HELP}, got {spec!r}") from None

    @staticmethod
    def _positive(k: int, spec: object) -> int:
        if k < 1:
            raise BadParameterError(f"expected at least one frame, got {spec!r}")
        return k

    def __str__(self) -> str:
        if self.kind == "all":
            return "all"
        if self.kind == "first":
            return str(self.count)
        if self.kind == "random":
            return f"random:{self.count}"
        return ",".join(map(str, self.frames))

    def chosen(self, num_frames: int, generator: torch.Generator | None = None) -> set[int] | None:
        """The chosen video frame numbers of a `num_frames`-long video (None: every frame).

        `random:K` draws with `generator` on its own device (a CUDA generator cannot drive a CPU randperm).
        """
        self.check(num_frames)
        if self.kind == "all":
            return None
        if self.kind == "first":
            return set(range(self.count))
        if self.kind == "random":
            device = generator.device if generator is not None else None
            perm = torch.randperm(num_frames, generator=generator, device=device)
            return {int(i) for i in perm[: self.count]}
        return set(self.frames)

    def check(self, num_frames: int) -> None:
        """Raise BadParameterError when a `num_frames`-long video cannot give these frames (draws nothing:
        a black-box attack checks before its first query)."""
        if self.kind in ("first", "random") and self.count > num_frames:
            prefix = "random:" if self.kind == "random" else ""
            raise BadParameterError(f"expected {prefix}K with 0 < K <= {num_frames}, got {self}")
        bad = [f for f in self.frames if f >= num_frames]
        if bad:
            raise BadParameterError(f"expected frame numbers in [0, {num_frames - 1}], got {bad[:5]}")

    def select(self, plan: FrameSelection, generator: torch.Generator | None = None) -> Tensor:
        """`(T,)` bool over the plan's sampled frames: may each be touched? Frames the model never
        samples cannot matter and are simply absent."""
        chosen = self.chosen(plan.num_frames, generator)
        ids = plan.frame_ids
        return torch.tensor([chosen is None or f in chosen for f in ids], dtype=torch.bool)


ALL_FRAMES = FrameSpec()


@dataclass(frozen=True)
class _Plan:
    frame_ids: tuple[int, ...]
    num_frames: int


def frames_mask(
    spec: str | FrameSpec | None,
    frame_ids: tuple[int, ...] | list[int],
    num_frames: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """`FrameSpec.parse(spec).select(...)` for callers holding frame ids rather than a plan: a `(T,)`
    bool vector over positions in `frame_ids`."""
    return FrameSpec.parse(spec).select(_Plan(tuple(frame_ids), num_frames), generator)


def frame_mask_5d(per_frame: Tensor, like: Tensor) -> Tensor:
    """Broadcast a `(T,)` frame selection to `(1, T, 1, 1, 1)` for a video like `like`."""
    return per_frame.to(like.device).view(1, -1, 1, 1, 1)


# -- shapes drawn on each frame -----------------------------------------------------------------


def rectangles(tops: Tensor, lefts: Tensor, height: int, width: int, h: int, w: int) -> Tensor:
    """`(*S, H, W)` masks of `height x width` rectangles at `tops`/`lefts` of any shape `S`, unchecked:
    the batched form region searches use for many candidate places at once."""
    rows = torch.arange(h, device=tops.device).view(h, 1)
    cols = torch.arange(w, device=tops.device).view(1, w)
    top, left = tops[..., None, None], lefts[..., None, None]
    return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)


@dataclass(frozen=True)
class Rectangle:
    """A `height x width` rectangle at (`top`, `left`): ints (one place on every frame and sample) or
    `(N, T)` tensors (a place per sample and frame, as a region search chooses)."""

    height: int
    width: int
    top: int | Tensor = 0
    left: int | Tensor = 0

    def mask(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        """`(1 or N, T, 1, H, W)` mask; raises BadParameterError when it leaves the frame."""
        t, h, w = shape[1], shape[-2], shape[-1]
        if not (1 <= self.height <= h and 1 <= self.width <= w):
            raise BadParameterError(
                f"expected a rectangle within the {h} x {w} frame, got {self.height} x {self.width}"
            )
        tops, lefts = torch.as_tensor(self.top), torch.as_tensor(self.left)
        if tops.dim() < 2:
            tops, lefts = tops.reshape(1, -1).expand(1, t), lefts.reshape(1, -1).expand(1, t)
        if bool(((tops < 0) | (tops + self.height > h) | (lefts < 0) | (lefts + self.width > w)).any()):
            raise BadParameterError(f"expected the rectangle inside the {h} x {w} frame")
        return rectangles(tops, lefts, self.height, self.width, h, w).unsqueeze(2)  # (N, T, 1, H, W)


@dataclass(frozen=True)
class Border:
    """A frame border `width` pixels thick on every side."""

    width: int

    def mask(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        """`(1, 1, 1, H, W)` mask; raises BadParameterError when the border is wider than half a frame."""
        h, w = shape[-2], shape[-1]
        if self.width < 1 or 2 * self.width > min(h, w):
            raise BadParameterError(
                f"expected a border width in [1, {min(h, w) // 2}] for a {h} x {w} frame, got {self.width}"
            )
        m = torch.ones(h, w, dtype=torch.bool)
        m[self.width : h - self.width, self.width : w - self.width] = False
        return m.view(1, 1, 1, h, w)


def border_width_for_ratio(height: int, width: int, r: float) -> int:
    """Border thickness covering an area ratio `r` of the frame: the smaller root of
    4 t^2 - 2 (W + H) t + r W H = 0, floored (the armory/ART frame-border definition)."""
    if not 0 < r < 1:
        raise BadParameterError(f"expected an area ratio in (0, 1), got {r}")
    disc = (2 * (width + height)) ** 2 - 16 * r * width * height
    t = (2 * (width + height) - math.sqrt(max(disc, 0.0))) / 8
    return max(1, math.floor(t))


@dataclass(frozen=True)
class Pixels:
    """Scattered pixels (all channels of each): flat indices into H * W, `(N, T, k)` per sample and frame."""

    indices: Tensor

    def mask(self, shape: tuple[int, ...] | torch.Size) -> Tensor:
        """`(N, T, 1, H, W)` mask."""
        t, h, w = shape[1], shape[-2], shape[-1]
        n = self.indices.shape[0]
        m = torch.zeros(n, t, h * w, dtype=torch.bool, device=self.indices.device)
        m.scatter_(2, self.indices.long(), True)
        return m.view(n, t, 1, h, w)


Shape = Rectangle | Border | Pixels


@dataclass(frozen=True)
class Region:
    """Where an attack may act: `shape` on each frame (None: the whole frame), on `frames` (`(T,)`
    bool over the sampled frames; None: all of them)."""

    shape: Shape | None = None
    frames: Tensor | None = None

    def mask(self, like: Tensor) -> Tensor | None:
        """The bool mask for a video like `like`, broadcastable to it (None: everything may change)."""
        out = None if self.shape is None else self.shape.mask(like.shape).to(like.device)
        if self.frames is not None:
            per_frame = frame_mask_5d(self.frames, like)
            out = per_frame if out is None else out & per_frame
        return out
