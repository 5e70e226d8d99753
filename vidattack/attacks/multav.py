"""MultAV: multiplicative adversarial videos (Lo and Patel, AVSS 2021), Lp ratio-bounded and regional.

The video is multiplied by a perturbation instead of having one added: x_adv = x * delta. Each step
(paper eq. 3-4) multiplies the current video by alpha_m ** s, with s = sign(grad) (Linf) or
grad / ||grad||_2 (L2), then clips to the ratio bound (RB) and to [0, 1]:

    x_{t+1} = clip_RB(x_t * alpha_m ** s),   RB-Linf: max(x_adv / x, x / x_adv) <= eps_m per pixel.

The perturbation x * (alpha_m ** s - 1) is signal-dependent: bright pixels move more than dark ones,
and a black pixel can never move (its gradient w.r.t. delta is zero too). Implementation notes:

- The attacks run the shared loop (`vidattack.attacks.loops.ascend`); the ratio bounds
  (`vidattack.threat.RatioLinf`, `RatioL2`) give it the multiplicative geometry: a step adds
  ln(alpha_m) * s to log(delta) = ln(x_adv / x), the ratio bound is then a bound on log(delta) (an
  elementwise clamp to [-ln eps_m, ln eps_m] for Linf), and log(delta) is read back from what the
  projection kept. Black pixels keep log(delta) = 0; no ratio is ever divided by zero.
- Gradients are taken w.r.t. the pixels x_t, as in the paper (not w.r.t. log(delta)).
- The region variants (ROA, AF, SPA) use the same update inside their region only; where the region
  lies is part of the attack (see `vidattack.attacks.region_search`) and is reported in `info`.
- `--eps` and `--alpha` set eps_m and alpha_m (`common`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, Unsupported, loss_and_grad
from vidattack.attacks.context import AttackContext
from vidattack.attacks.loops import ascend
from vidattack.attacks.params import param
from vidattack.attacks.region_search import BorderParams, PixelParams, RectangleParams
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import RatioL2, RatioLinf, ThreatModel

PAPER = "Lo and Patel, MultAV: Multiplicative Adversarial Videos, AVSS 2021"


def _first_step_fill(x: Tensor, grad: Tensor, eps_m: float, alpha_m: float) -> Tensor:
    """The video after one MultAV-Linf step everywhere: the probe a region search pastes into candidates."""
    return RatioLinf(eps_m=eps_m).project(x * torch.exp(math.log(alpha_m) * grad.sign()), x)


@dataclass(kw_only=True)
class _Multiplicative(Attack):
    """Shared by every MultAV attack: the loop with the step factor alpha_m, `--eps`/`--alpha` meaning
    eps_m/alpha_m."""

    common: ClassVar[dict[str, str | Unsupported]] = {"eps": "eps_m", "alpha": "alpha_m"}
    stops_when_fooled: ClassVar[bool] = True
    batchable: ClassVar[bool] = True
    per_video_info: ClassVar[frozenset[str]] = frozenset(
        {"stopped_at", "region.top", "region.left"}
    )  # a rectangle per video

    if TYPE_CHECKING:  # declared by the subclasses, with their own defaults and field order
        alpha_m: float
        steps: int

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return ascend(model, x, criterion, threat, ctx, start=x, size=self.alpha_m, steps=self.steps)


@dataclass(kw_only=True)
class _MultiplicativeLinf(_Multiplicative):
    """Shared by the attacks whose steps are MultAV-Linf steps inside a RatioLinf bound."""

    eps_m: float = param(1.04, "ratio bound: max(x_adv / x, x / x_adv) <= eps_m per pixel", min=1)
    alpha_m: float = param(1.01, "multiplicative step: each step multiplies by alpha_m ** +-1", min=1)
    steps: int = param(5, "number of iterations", min=0, max=100000)


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
class MultAVL2(_Multiplicative):
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
        region = self.rectangle(model, x, criterion, ctx, fill=fill, sensitivity=sensitivity)
        return RatioLinf(eps_m=self.eps_m, mask=region.mask(x))


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
        return RatioLinf(eps_m=self.eps_m, mask=self.border(ctx).mask(x))


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
        return RatioLinf(eps_m=self.eps_m, mask=self.scattered(x, ctx, sensitivity=sensitivity).mask(x))
