"""MultAV: multiplicative adversarial videos (Lo and Patel, AVSS 2021), Lp ratio-bounded and regional.

The video is multiplied by a perturbation instead of having one added: x_adv = x * delta. Each step
(paper eq. 3-4) multiplies the current video by alpha_m ** s, with s = sign(grad) (Linf) or
grad / ||grad||_2 (L2), then clips to the ratio bound (RB) and to [0, 1]:

    x_{t+1} = clip_RB(x_t * alpha_m ** s),   RB-Linf: max(x_adv / x, x / x_adv) <= eps_m per pixel.

The perturbation x * (alpha_m ** s - 1) is signal-dependent: bright pixels move more than dark ones,
and a black pixel can never move (its gradient w.r.t. delta is zero too). Implementation notes:

- The loop keeps log(delta) = ln(x_adv / x): a step adds ln(alpha_m) * s to it, and the ratio bound is
  then a bound on log(delta) (an elementwise clamp to [-ln eps_m, ln eps_m] for Linf). Projection is
  done by the threat model on the video itself, and log(delta) is read back from what it kept.
  Black pixels keep log(delta) = 0; no ratio is ever divided by zero.
- Gradients are taken w.r.t. the pixels x_t, as in the paper (not w.r.t. log(delta)).
- The region variants (ROA, AF, SPA) use the same update inside their region only; where the region
  lies is part of the attack (see `vidattack.attacks._region_search`) and is reported in `info`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks._region_search import BorderParams, PixelParams, RectangleParams
from vidattack.attacks.base import Attack, AttackContext, loss_and_grad
from vidattack.attacks.params import param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import RatioLinf, ThreatModel, per_sample_norm, ratio

PAPER = "Lo and Patel, MultAV: Multiplicative Adversarial Videos, AVSS 2021"

# Floor for logarithms of pixel values: far below 1/255, so it only ever guards log(0).
_TINY = 1e-12


def log_ratio(x_adv: Tensor, x: Tensor) -> Tensor:
    """ln(x_adv / x) per element, 0 where the clean pixel is black (it cannot move multiplicatively).

    Both values are floored at a tiny positive number first, so nothing is divided by zero.
    """
    lr = torch.log(x_adv.clamp_min(_TINY)) - torch.log(x.clamp_min(_TINY))
    return torch.where(x > 0, lr, torch.zeros_like(lr))


@dataclass(kw_only=True)
class RatioL2(ThreatModel):
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

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "measure": "||ln(x_adv / x)||_2 over the whole sampled video"}


def multiplicative_loop(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    threat: ThreatModel,
    ctx: AttackContext,
    *,
    alpha_m: float,
    steps: int,
    norm: Literal["linf", "l2"],
) -> Tensor:
    """`steps` MultAV steps on the criterion's objective from the clean video (paper eq. 3-4).

    Each step adds ln(alpha_m) * s to log(delta), s = sign(grad) (Linf) or grad / ||grad||_2 (L2, norm
    over the sample after masking), then lets `threat` project x * delta (ratio bound, [0, 1], mask).
    """
    log_alpha = math.log(alpha_m)
    log_delta = torch.zeros_like(x)
    x_adv = x
    for i in range(steps):
        _, value, grad = loss_and_grad(model, x_adv, criterion.objective)
        ctx.record(step=i, objective=float(value.mean()), queries=getattr(model, "queries", 0))
        if threat.mask is not None:
            grad = grad * threat.mask
        s = grad.sign() if norm == "linf" else grad / per_sample_norm(grad)
        x_adv = threat.project(x * torch.exp(log_delta + log_alpha * s), x)
        # what the projection kept (bound, saturation at 1, mask) is the new log(delta)
        log_delta = log_ratio(x_adv, x)
        ctx.step(i + 1, steps)
    return x_adv


def _first_step_fill(x: Tensor, grad: Tensor, eps_m: float, alpha_m: float) -> Tensor:
    """The video after one MultAV-Linf step everywhere: the probe a region search pastes into candidates."""
    return RatioLinf(eps_m=eps_m).project(x * torch.exp(math.log(alpha_m) * grad.sign()), x)


@dataclass(kw_only=True)
class _MultiplicativeLinf(Attack):
    """Shared by the attacks whose steps are MultAV-Linf steps inside a RatioLinf bound."""

    eps_m: float = param(1.04, "ratio bound: max(x_adv / x, x / x_adv) <= eps_m per pixel", min=1)
    alpha_m: float = param(1.01, "multiplicative step: each step multiplies by alpha_m ** +-1", min=1)
    steps: int = param(5, "number of iterations", min=0, max=100000)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return multiplicative_loop(
            model, x, criterion, threat, ctx, alpha_m=self.alpha_m, steps=self.steps, norm="linf"
        )


@register_attack("multav-linf")
@dataclass(kw_only=True)
class MultAVLinf(_MultiplicativeLinf):
    """MultAV-Linf: multiplicative sign steps in a per-pixel ratio bound (Lo and Patel, eq. 3).

    Each step: x <- clip_RB(x * alpha_m ** sign(grad_x L)), clip_RB keeping
    max(x_adv / x, x / x_adv) <= eps_m for every pixel, then [0, 1]. Defaults are the paper's: eps_m 1.04,
    alpha_m 1.01, 5 steps (1.01 ** 4 > 1.04, so the bound bites from the 4th step). Black pixels stay
    black. The perturbation is signal-dependent: |x_adv - x| is proportional to x. Input
    `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{PAPER}, eq. 3"
    threat_summary = (
        "multiplicative, every pixel of every sampled frame, ratio bound max(x'/x, x/x') <= eps_m"
    )

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return RatioLinf(eps_m=self.eps_m)


@register_attack("multav-l2")
@dataclass(kw_only=True)
class MultAVL2(Attack):
    """MultAV-L2: multiplicative normalized-gradient steps, bound ||ln(x_adv / x)||_2 <= eps_m.

    Each step: x <- clip_RB(x * alpha_m ** (g / ||g||_2)), g the loss gradient over the whole sample
    (paper eq. 4). The paper's bound ||x_adv / x||_2 <= eps_m + 1 is ambiguous as printed; it is read as
    the L2 norm of the log-ratio over the whole sampled video (see `RatioL2`), so each step has length
    ln(alpha_m) there and with the paper's defaults (eps_m 160, alpha_m 3.55, 5 steps) the bound is never
    reached (5 ln 3.55 = 6.3). Black pixels stay black. Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{PAPER}, eq. 4"
    threat_summary = (
        "multiplicative, every pixel of every sampled frame, ||ln(x'/x)||_2 <= eps_m over the video"
    )

    eps_m: float = param(160.0, "bound on the L2 norm of ln(x_adv / x) over the whole sampled video", min=0)
    alpha_m: float = param(
        3.55, "multiplicative step: each step multiplies by alpha_m ** (g / ||g||_2)", min=1
    )
    steps: int = param(5, "number of iterations", min=0, max=100000)

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return RatioL2(eps_m=self.eps_m)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return multiplicative_loop(
            model, x, criterion, threat, ctx, alpha_m=self.alpha_m, steps=self.steps, norm="l2"
        )


@register_attack("multav-roa")
@dataclass(kw_only=True)
class MultAVROA(RectangleParams, _MultiplicativeLinf):
    """MultAV-ROA: multiplicative rectangular occlusion, MultAV-Linf steps inside one rectangle.

    Paper settings: a 30 x 30 rectangle (video pixels), eps_m 1.7, alpha_m 3.55, 5 steps. The position
    is searched before the attack (ROA, Wu et al.), with the attack's own first step as the probe (a
    gray patch cannot be reached multiplicatively): `search=exhaustive` evaluates the probe at every
    position of a `stride` grid, `gradient` ranks windows by the summed squared gradient w.r.t.
    log(delta) (grad * x, so black areas score nothing) and evaluates the `top_k` best, `random` draws a
    position. `placement` shares one position across frames or picks one per frame; `frames` limits the
    frames that carry it. Black pixels inside stay black. Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{PAPER}, Sec. 3.1 (MultAV-ROA); search from Wu et al., ICLR 2020"
    threat_summary = "multiplicative, one rectangle per frame (searched), ratio bound eps_m"

    eps_m: float = param(1.7, "ratio bound inside the rectangle", min=1)
    alpha_m: float = param(3.55, "multiplicative step", min=1)

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        fill, sensitivity = x, None
        if self.search != "random":
            _, _, grad = loss_and_grad(model, x, criterion.objective)
            fill = _first_step_fill(x, grad, self.eps_m, self.alpha_m)
            sensitivity = (grad * x) ** 2
        mask = self.rectangle(model, x, criterion, ctx, fill=fill, sensitivity=sensitivity)
        return RatioLinf(eps_m=self.eps_m, mask=mask)


@register_attack("multav-af")
@dataclass(kw_only=True)
class MultAVAF(BorderParams, _MultiplicativeLinf):
    """MultAV-AF: multiplicative adversarial framing, MultAV-Linf steps inside a frame border.

    Paper settings: border width 10 (video pixels), eps_m 3.55, alpha_m 1.7, 5 steps; the same border on
    every frame in `frames`. Black border pixels stay black. Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{PAPER}, Sec. 3.1 (MultAV-AF); framing from Zajac et al., AAAI 2019"
    threat_summary = "multiplicative, a border of every frame, ratio bound eps_m"

    eps_m: float = param(3.55, "ratio bound inside the border", min=1)
    alpha_m: float = param(1.7, "multiplicative step", min=1)

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return RatioLinf(eps_m=self.eps_m, mask=self.border_mask(x, ctx))


@register_attack("multav-spa")
@dataclass(kw_only=True)
class MultAVSPA(PixelParams, _MultiplicativeLinf):
    """MultAV-SPA: multiplicative salt-and-pepper, MultAV-Linf steps on a few pixels per frame.

    Paper settings: 100 pixels per frame (all channels), eps_m 3.55, alpha_m 1.7, 5 steps. Pixels are
    chosen by the size of the gradient w.r.t. log(delta), the norm of grad * x over the channels (so
    black pixels, which cannot move, are never picked while others remain), or uniformly at random
    (`selection=random`, the authors' choice). Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{PAPER}, Sec. 3.1 (MultAV-SPA)"
    threat_summary = "multiplicative, scattered pixels (100 per frame), ratio bound eps_m"

    eps_m: float = param(3.55, "ratio bound on the chosen pixels", min=1)
    alpha_m: float = param(1.7, "multiplicative step", min=1)

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        sensitivity = None
        if self.selection == "gradient":
            _, _, grad = loss_and_grad(model, x, criterion.objective)
            sensitivity = (grad * x) ** 2
        return RatioLinf(eps_m=self.eps_m, mask=self.pixel_mask(x, ctx, sensitivity=sensitivity))
