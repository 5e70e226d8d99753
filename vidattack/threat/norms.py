"""Threat models: the set of videos an attack may produce from a clean one, and how to move inside it.

Every threat model knows how to `project` a candidate into its set (norm bound, valid pixel range,
region mask), `quantize` it onto the 8-bit grid a file holds without leaving the set, and `measure` how
far a candidate is from the clean video in its own norm. It also gives the iterative loop
(`vidattack.attacks.loops`) its geometry, as foolbox's gradient-descent base asks of its subclasses:
`steepest` (the unit step of steepest ascent in its norm), `advance` (a step of a given size: added for
additive models, multiplied for ratio bounds) and `random_start`. Tensors are `(N, T, C, H, W)` in [0, 1].

Quantization is where budgets are usually lost: plain rounding can push a pixel one level past the
bound. Here a pixel whose rounded value would leave the set is rounded toward its original value
instead, which always stays inside (every bound here is monotone in |x_adv - x| per pixel).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

LEVELS = 255.0

# Floor for logarithms of pixel values: far below 1/255, so it only ever guards log(0).
_TINY = 1e-12


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
    """`x_adv` where `mask` is True, `x` elsewhere (everything when `mask` is None)."""
    return x_adv if mask is None else torch.where(mask, x_adv, x)


def ratio(x_adv: Tensor, x: Tensor) -> Tensor:
    """Elementwise max(x_adv / x, x / x_adv), the multiplicative distance of the MultAV paper.

    0 -> 0 is ratio 1 (nothing changed); 0 -> non-zero or non-zero -> 0 is infinite (no finite ratio
    bound allows it). Computed in float on the values as given, not in 8-bit levels: for two values on
    the grid it equals the ratio of their levels only up to float rounding, so compare it with a bound
    with a small tolerance (`RatioLinf.quantize` decides feasibility in integer levels instead).
    """
    big, small = torch.maximum(x_adv, x), torch.minimum(x_adv, x)
    out = torch.where(small > 0, big / small.clamp_min(1e-12), torch.full_like(big, math.inf))
    return torch.where(big == 0, torch.ones_like(big), out)


def log_ratio(x_adv: Tensor, x: Tensor) -> Tensor:
    """ln(x_adv / x) per element, 0 where the clean pixel is black (it cannot move multiplicatively).

    Both values are floored at a tiny positive number first, so nothing is divided by zero.
    """
    lr = torch.log(x_adv.clamp_min(_TINY)) - torch.log(x.clamp_min(_TINY))
    return torch.where(x > 0, lr, torch.zeros_like(lr))


@dataclass(kw_only=True)
class ThreatModel(ABC):
    """Base class. `mask` (bool, broadcastable to the video) marks what may change; None = everything.

    The geometry defaults are those of an additive set with an elementwise (Linf-type) norm: sign steps
    added to the video. L2 sets override `steepest`, ratio bounds `advance`.
    """

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

    def steps_inside(self, size: float, dtype: torch.dtype) -> int:
        """How many sign steps of `size` from the clean video provably stay in the set before the range
        clamp: the loop clamps those to [0, 1] alone (0 here: no such guarantee for a general set)."""
        return 0

    def take(self, index: Tensor) -> ThreatModel:
        """The same set for the videos `index` `(k,)` of the batch only (a per-video mask is indexed; one
        shared by the batch, leading dimension 1, is kept): what a loop uses once some videos are done."""
        mask = self.mask
        if mask is not None and mask.dim() > 0 and mask.shape[0] != 1:
            mask = mask[index]
        return dataclasses.replace(self, mask=mask)

    def restricted(self, mask: Tensor) -> ThreatModel:
        """A copy allowed to change only where both its own mask and `mask` allow (never wider)."""
        return dataclasses.replace(self, mask=mask if self.mask is None else self.mask & mask)

    # -- geometry of the iterative loop ----------------------------------------------------------

    def steepest(self, grad: Tensor) -> Tensor:
        """The unit step of steepest ascent for `grad` in this norm: sign(grad) here (may reuse `grad`)."""
        return grad.sign_()

    def advance(self, x_adv: Tensor, x: Tensor, direction: Tensor, size: float, *, inplace: bool) -> Tensor:
        """`x_adv` moved by `size` along `direction`, before projection: added here.

        `inplace` allows reusing `x_adv`'s storage (the loop owns the iterate after its first step).
        """
        return x_adv.add_(direction, alpha=size) if inplace else x_adv.add(direction, alpha=size)

    def random_start(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A random point of the set around `x` (already projected): the seeded start of PGD."""
        raise NotImplementedError(f"threat model {self.name} has no random start")

    # -- projection and the 8-bit file -----------------------------------------------------------

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
        """JSON-ready summary for the report."""
        return {"name": self.name, "bound": self.bound, "masked": self.mask is not None}


def _unit_l2(grad: Tensor) -> Tensor:
    """grad / ||grad||_2 per sample (in place): the steepest-ascent step of an L2 norm."""
    return grad.div_(per_sample_norm(grad))


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

    def steps_inside(self, size: float, dtype: torch.dtype) -> int:
        # k sign steps of `size` from x move each pixel at most k * size, plus one rounding per step;
        # while that stays below eps (less the rounding of `box`'s x +- eps) the iterate lies in
        # [fl(x - eps), fl(x + eps)], where clamping to the box and to [0, 1] give the same bits. Values
        # are below 2, so a rounding error is at most the dtype's machine epsilon `u`.
        u = torch.finfo(dtype).eps
        room = self.eps * (1 - u) - u
        per_step = size * (1 + u) + u
        return max(int(room / per_step), 0) if room > 0 else 0

    def random_start(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A uniform point of the ball; projecting masks the noise too, so it never leaks out of a region."""
        noise = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * self.eps
        return self.project(x + noise, x)

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

    def steepest(self, grad: Tensor) -> Tensor:
        return _unit_l2(grad)

    def random_start(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A point of the ball at a uniform radius in a uniform direction, projected."""
        direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        radius = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype) * self.eps
        noise = direction / per_sample_norm(direction) * radius.view((-1,) + (1,) * (x.dim() - 1))
        return self.project(x + noise, x)


class _Multiplicative:
    """Ratio bounds move multiplicatively (MultAV eq. 3-4): a step of size `alpha_m` multiplies the
    video by alpha_m ** direction, i.e. adds ln(alpha_m) * direction to ln(x_adv / x).

    The loop keeps no log(delta) of its own: it is read back from the projected iterate, so whatever
    the projection kept (bound, saturation at 1, mask) is the next step's starting point. Black pixels
    keep log(delta) = 0; no ratio is ever divided by zero.
    """

    def advance(self, x_adv: Tensor, x: Tensor, direction: Tensor, size: float, *, inplace: bool) -> Tensor:
        return x * torch.exp(log_ratio(x_adv, x) + math.log(size) * direction)


@dataclass(kw_only=True)
class RatioLinf(_Multiplicative, ThreatModel):
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


@dataclass(kw_only=True)
class RatioL2(_Multiplicative, ThreatModel):
    """Multiplicative perturbation with ||ln(x_adv / x)||_2 <= eps_m over the whole sample (MultAV-L2).

    The paper prints the bound as ||x_adv / x||_2 <= eps_m + 1 ("adding 1 is just an offset"), which
    read literally is violated by the clean video itself (a ratio of 1 everywhere has norm
    sqrt(#pixels)). The reading used here is the L2 norm, over every sampled frame, channel and pixel,
    of the log-ratio ln(x_adv / x): the deviation of the ratio from 1 (ln r ~ r - 1 for small changes),
    symmetric in brightening and darkening like the Linf ratio bound max(r, 1/r), and exactly the space
    where a MultAV-L2 step has length ln(alpha_m). Black pixels may not change (0 -> 0 counts 0,
    0 -> anything else is infinite). Quantization keeps the bound: each pixel's |ln r| only shrinks
    when it is rounded toward its clean value.
    """

    eps_m: float = 160.0
    name: str = "ratio_l2"

    @property
    def bound(self) -> float:
        return self.eps_m

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # ratio() is max(r, 1/r) >= 1 (1 for 0 -> 0, inf when a black pixel changes or a pixel turns black)
        return torch.log(ratio(x_adv, x)).reshape(x.shape[0], -1).norm(dim=1)

    def _project_norm(self, x_adv: Tensor, x: Tensor) -> Tensor:
        # An elementwise clamp first (no single pixel can exceed the whole norm), which also makes
        # x_adv = 0 at a non-black pixel finite; then radial scaling of the log-ratio onto the ball.
        lr = log_ratio(x_adv, x).clamp(-self.eps_m, self.eps_m)
        norms = lr.reshape(x.shape[0], -1).norm(dim=1).clamp_min(1e-12)
        factor = (self.eps_m / norms).clamp(max=1.0).view((-1,) + (1,) * (x.dim() - 1))
        return x * torch.exp(lr * factor)

    def steepest(self, grad: Tensor) -> Tensor:
        return _unit_l2(grad)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "measure": "||ln(x_adv / x)||_2 over the whole sampled video"}
