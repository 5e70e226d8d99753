"""Additive region attacks: rectangular occlusion (ROA), adversarial framing (AF), salt-and-pepper (SPA).

The additive counterparts of MultAV's region attacks (Lo and Patel, AVSS 2021, Sec. 3.1), with the
paper's settings: eps 255/255 (any value inside the region), alpha 70/255, 5 sign steps (`pgd_loop`
from `vidattack.attacks.pgd` with a masked Linf ball). Each chooses its region first (in
`threat_model`, possibly with the model) and reports it in `info["region"]`; `frames` limits the video
frames it may touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks._region_search import BorderParams, PixelParams, RectangleParams
from vidattack.attacks.base import Attack, AttackContext, loss_and_grad
from vidattack.attacks.params import param
from vidattack.attacks.pgd import pgd_loop
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import LinfBall, ThreatModel

MULTAV = "Lo and Patel, MultAV: Multiplicative Adversarial Videos, AVSS 2021, Sec. 3.1"
GRAY = 0.5


@dataclass(kw_only=True)
class _AdditiveRegion(Attack):
    """Shared by the additive region attacks: sign steps in a masked Linf ball."""

    eps: float = param(1.0, "Linf budget inside the region, [0, 1] pixel units (1 = anything)", min=0, max=1)
    alpha: float = param(70 / 255, "step size in [0, 1] pixel units", min=0)
    steps: int = param(5, "number of iterations", min=0, max=100000)

    def start(self, x: Tensor, threat: ThreatModel) -> Tensor:
        """Where the sign steps start (the clean video unless the attack says otherwise)."""
        return x

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        start = self.start(x, threat)
        return pgd_loop(
            model, x, criterion, threat, ctx, start=start, alpha=self.alpha, steps=self.steps, norm="linf"
        )


def _squared_gradient(model: nn.Module, x: Tensor, criterion: Criterion) -> Tensor:
    _, _, grad = loss_and_grad(model, x, criterion.objective)
    return grad**2


@register_attack("roa")
@dataclass(kw_only=True)
class ROA(RectangleParams, _AdditiveRegion):
    """Rectangular occlusion attack: a searched rectangle, started gray, then additive sign steps.

    Wu et al. (ICLR 2020) with the MultAV paper's video settings: a 30 x 30 rectangle (video pixels),
    eps 255/255, alpha 70/255, 5 steps. The rectangle's position is searched first with a gray (0.5)
    rectangle as the probe: `search=exhaustive` tries every position of a `stride` grid and keeps the
    largest loss; `gradient` ranks windows by the summed squared loss gradient and evaluates the `top_k`
    best; `random` draws a position (the MultAV authors' video code). `placement` shares one position
    across frames or picks one per frame. The rectangle then starts gray and takes sign steps.
    Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"Wu et al., Defending Against Physically Realizable Attacks, ICLR 2020; {MULTAV}"
    threat_summary = "additive, one rectangle per frame (searched), anything inside it"

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        fill = LinfBall(eps=self.eps).project(torch.full_like(x, GRAY), x)
        sensitivity = _squared_gradient(model, x, criterion) if self.search == "gradient" else None
        mask = self.rectangle(model, x, criterion, ctx, fill=fill, sensitivity=sensitivity)
        return LinfBall(eps=self.eps, mask=mask)

    def start(self, x: Tensor, threat: ThreatModel) -> Tensor:
        # the mask keeps the gray inside the rectangle
        return threat.project(torch.full_like(x, GRAY), x)


@register_attack("af")
@dataclass(kw_only=True)
class AF(BorderParams, _AdditiveRegion):
    """Adversarial framing: additive sign steps inside a border of every frame (Zajac et al.).

    MultAV paper settings: border width 10 (video pixels), eps 255/255, alpha 70/255, 5 steps, from the
    clean video (no random start, so nothing can leak outside the border). Input `(N, T, 3, H, W)`.
    """

    paper = f"Zajac et al., Adversarial Framing for Image and Video Classification, AAAI 2019; {MULTAV}"
    threat_summary = "additive, a border of every frame, anything inside it"

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps, mask=self.border_mask(x, ctx))


@register_attack("spa")
@dataclass(kw_only=True)
class SPA(PixelParams, _AdditiveRegion):
    """Salt-and-pepper attack: additive sign steps on a few pixels per frame.

    MultAV paper settings: 100 pixels per frame (all channels), eps 255/255, alpha 70/255, 5 steps.
    Pixels are chosen by gradient magnitude at the clean video (default, stronger) or uniformly at
    random (`selection=random`, as the authors' code). The steps start from the clean pixels, or from
    black ones as in the authors' code (`init=black`). Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{MULTAV} (SPA)"
    threat_summary = "additive, scattered pixels (100 per frame), anything at them"

    init: Literal["clean", "black"] = param(
        "clean", "start of the chosen pixels: clean, or black (authors' code)"
    )

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        sensitivity = _squared_gradient(model, x, criterion) if self.selection == "gradient" else None
        return LinfBall(eps=self.eps, mask=self.pixel_mask(x, ctx, sensitivity=sensitivity))

    def start(self, x: Tensor, threat: ThreatModel) -> Tensor:
        return x if self.init == "clean" else threat.project(torch.zeros_like(x), x)
