"""Partitions of a tentative perturbation into patches that share one NES coefficient (V-BAD Sec. 3.4).

- `uniform`: each frame cut into `grid` x `grid` patches, all channels together (K = grid^2 T
  coefficients). Row and column bands are `floor(i * grid / size)`, so every pixel of any frame size is
  covered (uneven patches; the official code required widths divisible by 8 and left the bottom of tall
  frames out).
- `random`: each frame's input dimensions dealt at random into grid^2 equal groups, redrawn at every
  call (SR-BAD, after Bhagoji et al.).
- `pixel`: every input dimension its own coefficient (pixel-wise NES, P-BAD, after Ilyas et al.).

Given `frames` (the positions an attack's `frames` parameter selected), a partition covers those frames
only: K counts their coefficients alone, and `expand` leaves every other frame exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidattack.attacks.blackbox.frames import embed_frames

__all__ = ["Partition", "coefficient_count", "make_partition", "uniform_patch_ids"]


def uniform_patch_ids(height: int, width: int, grid: int) -> Tensor:
    """Patch index `(H, W)` in [0, grid^2) of each pixel for a `grid` x `grid` split of a frame.

    Row band `floor(y * grid / H)`, column band `floor(x * grid / W)`: every pixel belongs to exactly one
    patch for any frame size; patch sides differ by at most one pixel.
    """
    rows = torch.arange(height) * grid // height
    cols = torch.arange(width) * grid // width
    return rows.view(-1, 1) * grid + cols.view(1, -1)


@dataclass
class Partition:
    """Which coefficient each input dimension of a `(T, 3, H, W)` video follows.

    `index` (broadcastable to the covered frames, values in [0, size)) or None for one coefficient per
    dimension. `frames` `(T_sel,)`: the positions of the frames covered (None: all of them); the others
    follow no coefficient and stay zero.
    """

    size: int
    index: Tensor | None
    frames: Tensor | None = None

    def expand(self, coeff: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Coefficients `(P, size)` -> per-dimension values `(P, T, C|1, H, W)` broadcastable to `shape`
        (exactly zero on frames the partition does not cover)."""
        if self.frames is None:
            return self._values(coeff, shape)
        covered = self._values(coeff, (len(self.frames), *shape[1:]))  # (P, T_sel, C|1, H, W)
        return embed_frames(covered, self.frames, shape[0])

    def _values(self, coeff: Tensor, shape: tuple[int, ...]) -> Tensor:
        p = coeff.shape[0]
        if self.index is None:
            return coeff.view(p, *shape)
        return coeff[:, self.index.reshape(-1)].view(p, *self.index.shape)


def coefficient_count(kind: str, shape: tuple[int, ...], grid: int) -> int:
    """K, the number of coefficients NES estimates for a `(T, 3, H, W)` video."""
    t, c, h, w = shape
    return t * c * h * w if kind == "pixel" else t * grid * grid


def make_partition(
    kind: str,
    shape: tuple[int, ...],
    grid: int,
    generator: torch.Generator,
    device: torch.device,
    frames: Tensor | None = None,
) -> Partition:
    """The partition of a `(T, 3, H, W)` video: `uniform`, `random` (fresh draw) or `pixel`, over the
    frames at positions `frames` `(T_sel,)` only when given."""
    _, c, h, w = shape
    t = shape[0] if frames is None else len(frames)
    groups = grid * grid
    if kind == "pixel":
        return Partition(size=t * c * h * w, index=None, frames=frames)
    offsets = torch.arange(t, device=device).view(t, 1, 1, 1) * groups
    if kind == "uniform":
        ids = uniform_patch_ids(h, w, grid).to(device).view(1, 1, h, w)
        return Partition(size=t * groups, index=offsets + ids, frames=frames)  # (T_sel, 1, H, W)
    # random: deal each frame's input dimensions into `groups` groups of (nearly) equal size
    ranks = torch.rand((t, c * h * w), generator=generator, device=device).argsort(dim=1)
    return Partition(size=t * groups, index=offsets + (ranks % groups).view(t, c, h, w), frames=frames)
