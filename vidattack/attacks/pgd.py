"""FGSM and PGD (additive, Linf and L2): Goodfellow et al. 2015; Madry et al. 2018.

Each is the shared loop (`vidattack.attacks.loops.ascend`) in its norm ball: every step ascends the
criterion's cross-entropy objective, then projects back into the threat model (norm ball, [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.context import AttackContext
from vidattack.attacks.loops import LinfSteps, ascend
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import L2Ball, LinfBall, ThreatModel

MADRY = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"


@register_attack("fgsm")
@dataclass(kw_only=True)
class FGSM(Attack):
    """Fast Gradient Sign Method: one Linf step of size eps along the sign of the loss gradient.

    x_adv = clip_[0,1](x + eps * sign(grad_x L)), with L the cross-entropy of the clean label (ascended)
    or of the target (descended). Input `(N, T, 3, H, W)` in [0, 1]; eps in [0, 1] pixel units.
    """

    paper = "Goodfellow et al., Explaining and Harnessing Adversarial Examples, ICLR 2015"
    threat_summary = "additive, every pixel of every sampled frame, Linf ball"
    batchable = True  # one step, nothing random: nothing to stop early

    eps: float = param(
        4 / 255, "Linf budget in [0, 1] pixel units (4/255 as the MultAV paper's PGD)", min=0, max=1
    )

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return ascend(model, x, criterion, threat, ctx, start=x, size=self.eps, steps=1)


@register_attack("pgd-linf")
@dataclass(kw_only=True)
class PGDLinf(LinfSteps, Attack):
    """Projected Gradient Descent in the Linf ball (Madry et al.).

    Each step: x <- Proj_{||x - x0||_inf <= eps, [0,1]}(x + alpha * sign(grad_x L)). Defaults are the
    MultAV paper's additive baseline: eps 4/255, alpha 1/255, 5 steps, no random start (the paper's
    deterministic setting; `random_start=true` draws a uniform point of the ball first, seeded).
    `alpha=auto` uses the adversarial-training paper's rule alpha = 0.2 (eps + 1) in /255 units.
    Input `(N, T, 3, H, W)` in [0, 1]; all budgets in [0, 1] pixel units.
    """

    paper = f"{MADRY}; defaults from Lo and Patel, MultAV (AVSS 2021), Sec. 4 (PGD-Linf baseline)"
    threat_summary = "additive, every pixel of every sampled frame, Linf ball"
    stops_when_fooled = True
    batchable = True

    eps: float = param(4 / 255, "Linf budget in [0, 1] pixel units", min=0, max=1)
    alpha: float | Literal["auto"] = param(1 / 255, "step size, or auto = 0.2 (eps + 1) in /255 units", min=0)
    steps: int = param(5, "number of iterations", min=0, max=100000)
    random_start: bool = param(False, "start from a uniform random point of the eps ball")

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return self.linf_pgd(model, x, criterion, threat, ctx)


@register_attack("pgd-l2")
@dataclass(kw_only=True)
class PGDL2(Attack):
    """Projected Gradient Descent in the L2 ball (Madry et al.).

    Each step: x <- Proj_{||x - x0||_2 <= eps, [0,1]}(x + alpha * g / ||g||_2), the norm taken over the
    whole sample (every sampled frame and channel). Defaults are the MultAV paper's: eps 160, alpha 1.0,
    5 steps, in [0, 1] units for a 3 x 40 x 112 x 112 clip. Deliberate choice: no random start by
    default, so the perturbation's L2 norm is at most steps * alpha = 5 and the eps = 160 ball is never
    reached (a random start in a radius-160 ball would be visible noise of ~0.2 per pixel on a
    16-frame 112 x 112 clip). `alpha=auto` is Madry's 2.5 * eps / steps.
    """

    paper = f"{MADRY}; defaults from Lo and Patel, MultAV (AVSS 2021), Sec. 4 (PGD-L2 baseline)"
    threat_summary = "additive, every pixel of every sampled frame, L2 ball over the whole video"
    stops_when_fooled = True
    batchable = True

    eps: float = param(160.0, "L2 budget over the whole sampled video, [0, 1] pixel units", min=0)
    alpha: float | Literal["auto"] = param(1.0, "L2 length of each step, or auto = 2.5 eps / steps", min=0)
    steps: int = param(5, "number of iterations", min=0, max=100000)
    random_start: bool = param(
        False,
        "start from a random point of the eps ball (off: at eps 160 that is visible noise, about 0.2 per pixel)",
    )

    def step_size(self) -> float:
        if self.alpha == AUTO:
            return 2.5 * self.eps / max(self.steps, 1)
        return float(self.alpha)

    def hyperparameters(self) -> dict[str, object]:
        return {**super().hyperparameters(), "alpha": self.step_size()}

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return L2Ball(eps=self.eps)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        start = ctx.random_start(threat, x) if self.random_start else x
        return ascend(model, x, criterion, threat, ctx, start=start, size=self.step_size(), steps=self.steps)
