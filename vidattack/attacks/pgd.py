"""FGSM and PGD (additive, Linf and L2): Goodfellow et al. 2015; Madry et al. 2018.

The shared `pgd_loop` is the additive inner optimiser other attacks (region attacks, masked PGD, frame
border) reuse with their own threat model: each step ascends the criterion's cross-entropy objective,
then projects back into the threat model (mask, norm ball, [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, AttackContext, loss_and_grad
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import L2Ball, LinfBall, ThreatModel, per_sample_norm

MADRY = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"


def auto_alpha_linf(eps: float) -> float:
    """The adversarial-training paper's step-size rule for Linf PGD: alpha = 0.2 (eps + 1) in /255 units.

    It is the least-squares fit of the step sizes that maximized the loss in the paper's measurements
    (e.g. eps 4 -> alpha 1, eps 8 -> alpha 1.8).
    """
    return 0.2 * (eps * 255.0 + 1.0) / 255.0


def random_start(
    x: Tensor, threat: ThreatModel, norm: Literal["linf", "l2"], eps: float, gen: torch.Generator
) -> Tensor:
    """A uniform point of the Linf ball, or a point of the L2 ball at a uniform radius, projected."""
    if norm == "linf":
        noise = (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        direction = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        radius = torch.rand((x.shape[0],), generator=gen, device=x.device, dtype=x.dtype) * eps
        noise = direction / per_sample_norm(direction) * radius.view((-1,) + (1,) * (x.dim() - 1))
    # projecting masks the noise too, so a random start never leaks outside a region
    return threat.project(x + noise, x)


def pgd_loop(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    threat: ThreatModel,
    ctx: AttackContext,
    *,
    start: Tensor,
    alpha: float,
    steps: int,
    norm: Literal["linf", "l2"],
) -> Tensor:
    """`steps` projected ascent steps on the criterion's objective from `start`.

    Linf steps add `alpha * sign(grad)`; L2 steps add `alpha * grad / ||grad||_2` (gradient restricted to
    the threat model's mask first, so the step's norm is spent where pixels may change).
    """
    x_adv = start
    box = threat.box(x) if norm == "linf" and steps > 1 else None
    for i in range(steps):
        _, value, grad = loss_and_grad(model, x_adv, criterion.objective)
        ctx.record(step=i, objective=float(value.mean()), queries=getattr(model, "queries", 0))
        if threat.mask is not None:
            grad = grad * threat.mask
        step = grad.sign_() if norm == "linf" else grad.div_(per_sample_norm(grad))
        if box is not None:
            # in place from the second step on: the iterate is ours then, and a fresh video-sized
            # tensor per step costs page faults the step can do without
            x_adv = (x_adv.add_ if i else x_adv.add)(step, alpha=alpha).clamp_(*box)
        else:
            x_adv = threat.project(x_adv.add(step, alpha=alpha), x)
        ctx.step(i + 1, steps)
    return x_adv


class LinfSteps:
    """The Linf PGD inner loop shared by attacks with `eps`, `alpha` (a number or `auto`), `steps` and
    `random_start` parameters: PGD-Linf itself, masked PGD and frame saliency. Mix in before `Attack`."""

    eps: float
    alpha: float | Literal["auto"]
    steps: int
    random_start: bool

    def step_size(self) -> float:
        """The step size in [0, 1] units, `auto` resolved."""
        return auto_alpha_linf(self.eps) if self.alpha == AUTO else float(self.alpha)

    def hyperparameters(self) -> dict[str, object]:
        return {**super().hyperparameters(), "alpha": self.step_size()}  # type: ignore[misc]

    def linf_pgd(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        """`steps` sign steps from `x` (or a random point of the ball) projected into `threat`."""
        start = random_start(x, threat, "linf", self.eps, ctx.generator) if self.random_start else x
        return pgd_loop(
            model,
            x,
            criterion,
            threat,
            ctx,
            start=start,
            alpha=self.step_size(),
            steps=self.steps,
            norm="linf",
        )


@register_attack("fgsm")
@dataclass(kw_only=True)
class FGSM(Attack):
    """Fast Gradient Sign Method: one Linf step of size eps along the sign of the loss gradient.

    x_adv = clip_[0,1](x + eps * sign(grad_x L)), with L the cross-entropy of the clean label (ascended)
    or of the target (descended). Input `(N, T, 3, H, W)` in [0, 1]; eps in [0, 1] pixel units.
    """

    paper = "Goodfellow et al., Explaining and Harnessing Adversarial Examples, ICLR 2015"
    threat_summary = "additive, every pixel of every sampled frame, Linf ball"

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
        return pgd_loop(model, x, criterion, threat, ctx, start=x, alpha=self.eps, steps=1, norm="linf")


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

    eps: float = param(160.0, "L2 budget over the whole sampled video, [0, 1] pixel units", min=0)
    alpha: float | Literal["auto"] = param(1.0, "L2 length of each step, or auto = 2.5 eps / steps", min=0)
    steps: int = param(5, "number of iterations", min=0, max=100000)
    random_start: bool = param(False, "start from a random point of the eps ball (see docstring)")

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
        start = random_start(x, threat, "l2", self.eps, ctx.generator) if self.random_start else x
        return pgd_loop(
            model, x, criterion, threat, ctx, start=start, alpha=self.step_size(), steps=self.steps, norm="l2"
        )
