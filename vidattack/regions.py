"""Region masks that compose with any threat model: rectangles, frame borders, scattered pixels.

Masks are bool tensors broadcastable to a video `(N, T, C, H, W)`; True marks pixels an attack may
change. Sizes are in the video's own pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vidattack.errors import BadParameterError


def rectangle_mask(
    shape: tuple[int, ...], top: int | Tensor, left: int | Tensor, height: int, width: int
) -> Tensor:
    """`(1, T, 1, H, W)` mask of a `height x width` rectangle at (`top`, `left`).

    `top`/`left` are ints (same place on every frame) or `(T,)` tensors (a place per frame).
    """
    t, h, w = shape[1], shape[-2], shape[-1]
    if height > h or width > w or height < 1 or width < 1:
        raise BadParameterError(f"expected a rectangle within the {h} x {w} frame, got {height} x {width}")
    tops = (
        torch.as_tensor(top).reshape(-1).expand(t)
        if torch.as_tensor(top).numel() == 1
        else torch.as_tensor(top)
    )
    lefts = (
        torch.as_tensor(left).reshape(-1).expand(t)
        if torch.as_tensor(left).numel() == 1
        else torch.as_tensor(left)
    )
    if bool(((tops < 0) | (tops + height > h) | (lefts < 0) | (lefts + width > w)).any()):
        raise BadParameterError(f"expected the rectangle inside the {h} x {w} frame")
    return rectangles(tops, lefts, height, width, h, w).view(1, t, 1, h, w)


def rectangles(tops: Tensor, lefts: Tensor, height: int, width: int, h: int, w: int) -> Tensor:
    """`(*S, H, W)` masks of `height x width` rectangles at `tops`/`lefts` of any shape `S`, unchecked:
    the batched form region searches use for many candidate places at once."""
    rows = torch.arange(h, device=tops.device).view(h, 1)
    cols = torch.arange(w, device=tops.device).view(1, w)
    top, left = tops[..., None, None], lefts[..., None, None]
    return (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)


def border_mask(shape: tuple[int, ...], width: int) -> Tensor:
    """`(1, 1, 1, H, W)` mask of a frame border `width` pixels thick on every side."""
    h, w = shape[-2], shape[-1]
    if width < 1 or 2 * width > min(h, w):
        raise BadParameterError(
            f"expected a border width in [1, {min(h, w) // 2}] for a {h} x {w} frame, got {width}"
        )
    m = torch.ones(h, w, dtype=torch.bool)
    m[width : h - width, width : w - width] = False
    return m.view(1, 1, 1, h, w)


def border_width_for_ratio(height: int, width: int, r: float) -> int:
    """Border thickness covering an area ratio `r` of the frame: the smaller root of
    4 t^2 - 2 (W + H) t + r W H = 0, floored (the armory/ART frame-border definition)."""
    if not 0 < r < 1:
        raise BadParameterError(f"expected an area ratio in (0, 1), got {r}")
    disc = (2 * (width + height)) ** 2 - 16 * r * width * height
    t = (2 * (width + height) - math.sqrt(max(disc, 0.0))) / 8
    return max(1, math.floor(t))


def pixel_mask(shape: tuple[int, ...], flat_indices: Tensor) -> Tensor:
    """`(1, T, 1, H, W)` mask from per-frame flat pixel indices `(T, k)` into H * W (all channels)."""
    t, h, w = shape[1], shape[-2], shape[-1]
    m = torch.zeros(t, h * w, dtype=torch.bool, device=flat_indices.device)
    m.scatter_(1, flat_indices.long(), True)
    return m.view(1, t, 1, h, w)


def combine(*masks: Tensor | None) -> Tensor | None:
    """Intersection of masks (None means everything)."""
    out: Tensor | None = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else (out & m)
    return out
