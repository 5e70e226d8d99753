"""Threat models: the set of videos an attack may produce from a clean one.

Every threat model knows how to `project` a candidate into its set (norm bound, valid pixel range,
region mask), `quantize` it onto the 8-bit grid a file holds without leaving the set, and `measure` how
far a candidate is from the clean video in its own norm. Tensors are `(N, T, C, H, W)` in [0, 1].

Quantization is where budgets are usually lost: plain rounding can push a pixel one level past the
bound. Here a pixel whose rounded value would leave the set is rounded toward its original value
instead, which always stays inside (every bound here is monotone in |x_adv - x| per pixel).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

LEVELS = 255.0


def _per_sample(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1)


def per_sample_norm(t: Tensor) -> Tensor:
    """L2 norm of each sample of a batch, shaped to broadcast against it (never below 1e-12)."""
    return t.reshape(t.shape[0], -1).norm(dim=1).clamp_min(1e-12).view((-1,) + (1,) * (t.dim() - 1))


def round_toward(x_adv: Tensor, x: Tensor) -> Tensor:
    """The 8-bit value between `x` and `x_adv` closest to `x_adv`: never further from `x` than `x_adv`."""
    a, o = x_adv * LEVELS, torch.round(x * LEVELS)
    return torch.where(a >= o, torch.floor(a + 1e-4), torch.ceil(a - 1e-4)) / LEVELS


def apply_mask(x_adv: Tensor, x: Tensor, mask: Tensor | None) -> Tensor:
    return x_adv if mask is None else torch.where(mask, x_adv, x)


@dataclass(kw_only=True)
class ThreatModel(ABC):
    """Base class. `mask` (bool, broadcastable to the video) marks what may change; None = everything."""

    mask: Tensor | None = None

    name: str = "threat"

    @property
    @abstractmethod
    def bound(self) -> float:
        """The budget in this threat model's own measure (inf when unbounded)."""

    @abstractmethod
    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Distance of each sample from the clean video in this threat model's norm, `(N,)`."""

    @abstractmethod
    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Project into the norm set, ignoring the pixel range and the mask."""

    def _inside_elementwise(self, x_adv: Tensor, x: Tensor) -> Tensor | None:
        """Per-pixel feasibility for elementwise bounds (None for global ones such as L2)."""
        return None

    def box(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """Per-pixel bounds `(lo, hi)` whose clamp equals `project`, for sets that are boxes (None if not).

        Iterative attacks compute them once: a clamp to two tensors is one pass over the video where
        `project` makes four.
        """
        return None

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Nearest-enough point of the set: masked, norm-projected, then clipped to [0, 1].

        Clipping moves each pixel toward its (valid) original value, so it never breaks the bound.
        """
        x_adv = apply_mask(x_adv, x, self.mask)
        return self._project_norm(x_adv, x).clamp(0.0, 1.0)

    def quantize(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Onto the 1/255 grid, inside the set. `x` must itself be on the grid (decoded 8-bit)."""
        x_adv = self.project(x_adv, x)
        q = torch.round(x_adv * LEVELS) / LEVELS
        toward = round_toward(x_adv, x)
        inside = self._inside_elementwise(q, x)
        if inside is not None:
            q = torch.where(inside, q, toward)
        elif math.isfinite(self.bound):
            over = self.measure(q, x) > self.bound * (1 + 1e-6)
            if bool(over.any()):
                shape = (-1,) + (1,) * (x.dim() - 1)
                q = torch.where(over.view(shape), toward, q)
        return apply_mask(q, x, self.mask)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "bound": self.bound, "masked": self.mask is not None}


@dataclass(kw_only=True)
class Unbounded(ThreatModel):
    """Only the pixel range and the mask: region attacks (patches, borders) with eps = 1."""

    name: str = "unbounded"

    @property
    def bound(self) -> float:
        return math.inf

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return _per_sample((x_adv - x).abs()).amax(dim=1)

    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return x_adv


@dataclass(kw_only=True)
class LinfBall(ThreatModel):
    """Additive perturbation with max |x_adv - x| <= eps."""

    eps: float = 4 / 255
    name: str = "linf"

    @property
    def bound(self) -> float:
        return self.eps

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return _per_sample((x_adv - x).abs()).amax(dim=1)

    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # two temporaries instead of four: this runs every step on every pixel of the video
        return (x_adv - x).clamp_(-self.eps, self.eps).add_(x)

    def box(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # [x - eps, x + eps] within [0, 1] (never empty, as x is), collapsed to x outside the mask
        lo, hi = (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
        if self.mask is not None:
            lo, hi = torch.where(self.mask, lo, x), torch.where(self.mask, hi, x)
        return lo, hi

    def _inside_elementwise(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # compare in integer levels so 4/255 is exactly 4 levels despite float error
        return (torch.round(x_adv * LEVELS) - torch.round(x * LEVELS)).abs() <= self.eps * LEVELS + 1e-3


@dataclass(kw_only=True)
class L2Ball(ThreatModel):
    """Additive perturbation with ||x_adv - x||_2 <= eps over the whole sample (all frames)."""

    eps: float = 160.0
    name: str = "l2"

    @property
    def bound(self) -> float:
        return self.eps

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return _per_sample(x_adv - x).norm(dim=1)

    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        delta = x_adv - x
        norms = _per_sample(delta).norm(dim=1).clamp_min(1e-12)
        factor = (self.eps / norms).clamp(max=1.0).view((-1,) + (1,) * (x.dim() - 1))
        return x + delta * factor


def ratio(x_adv: Tensor, x: Tensor) -> Tensor:
    """Elementwise max(x_adv / x, x / x_adv), the multiplicative distance of the MultAV paper.

    0 -> 0 is ratio 1 (nothing changed); 0 -> non-zero or non-zero -> 0 is infinite (no finite ratio
    bound allows it). Computed in 8-bit levels when both are on the grid so small values are exact.
    """
    big, small = torch.maximum(x_adv, x), torch.minimum(x_adv, x)
    out = torch.where(small > 0, big / small.clamp_min(1e-12), torch.full_like(big, math.inf))
    return torch.where(big == 0, torch.ones_like(big), out)


def frames_mask(
    spec: str | None,
    frame_ids: tuple[int, ...] | list[int],
    num_frames: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Which sampled frames an attack may touch, as a bool vector over positions in `frame_ids`.

    `spec` is in the video's own frame numbers: None/"all" (every frame), "K" (the first K frames of
    the video), "random:K" (K frames of the video drawn with `generator`), or a list "0,3,7".
    Frames the model never samples cannot matter and are simply absent.
    """
    from vidattack.errors import BadParameterError

    ids = list(frame_ids)
    if spec is None or str(spec).strip().lower() in ("", "all"):
        return torch.ones(len(ids), dtype=torch.bool)
    text = str(spec).strip().lower()
    chosen: set[int]
    try:
        if text.startswith("random:"):
            k = int(text.split(":", 1)[1])
            if not 0 < k <= num_frames:
                raise BadParameterError(f"expected random:K with 0 < K <= {num_frames}, got {spec!r}")
            # drawn on the generator's own device: a CUDA generator cannot drive a CPU randperm
            device = generator.device if generator is not None else None
            perm = torch.randperm(num_frames, generator=generator, device=device)
            chosen = {int(i) for i in perm[:k]}
        elif "," in text or text.startswith("["):
            chosen = {int(v) for v in text.strip("[]").split(",") if v.strip()}
        else:
            k = int(text)
            if not 0 < k <= num_frames:
                raise BadParameterError(f"expected 0 < K <= {num_frames} frames, got {spec!r}")
            chosen = set(range(k))
    except ValueError:
        raise BadParameterError(
            f"expected frames as all, K, random:K or a list like 0,3,7, got {spec!r}"
        ) from None
    bad = sorted(f for f in chosen if not 0 <= f < num_frames)
    if bad:
        raise BadParameterError(f"expected frame numbers in [0, {num_frames - 1}], got {bad[:5]}")
    return torch.tensor([f in chosen for f in ids], dtype=torch.bool)


def frame_mask_5d(per_frame: Tensor, like: Tensor) -> Tensor:
    """Broadcast a `(T,)` frame selection to `(1, T, 1, 1, 1)` for a video like `like`."""
    return per_frame.to(like.device).view(1, -1, 1, 1, 1)


@dataclass(kw_only=True)
class RatioLinf(ThreatModel):
    """Multiplicative perturbation with max(x_adv / x, x / x_adv) <= eps_m for every pixel (MultAV).

    Black pixels cannot change (0 -> 0 is ratio 1, 0 -> anything else is unbounded).
    """

    eps_m: float = 1.04
    name: str = "ratio_linf"

    @property
    def bound(self) -> float:
        return self.eps_m

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return _per_sample(ratio(x_adv, x)).amax(dim=1)

    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return torch.minimum(torch.maximum(x_adv, x / self.eps_m), x * self.eps_m)

    def _inside_elementwise(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # in integer levels: lo <= a <= hi with lo = x / eps_m, hi = x * eps_m
        a, o = torch.round(x_adv * LEVELS), torch.round(x * LEVELS)
        return (a * self.eps_m >= o - 1e-3) & (a <= o * self.eps_m + 1e-3)
