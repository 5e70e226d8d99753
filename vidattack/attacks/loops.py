"""The one iterative loop of the gradient attacks, and the Linf PGD settings several attacks share.

`ascend` is foolbox's gradient-descent base with the geometry on the threat model: each step takes the
gradient of the criterion's objective, keeps it where the threat model's mask allows, turns it into
the threat model's unit step (`steepest`: sign for Linf-type sets, g / ||g||_2 for L2 ones), moves by
`size` (`advance`: added for additive sets, multiplied for MultAV's ratio bounds), then projects back
into the set. PGD, FGSM, MultAV, the region attacks, masked PGD and frame saliency all run it.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from vidattack.attacks.base import AttackContext, loss_and_grad, queries_of
from vidattack.attacks.params import AUTO
from vidattack.criteria import Criterion
from vidattack.threat import ThreatModel


def auto_alpha_linf(eps: float) -> float:
    """The adversarial-training paper's step-size rule for Linf PGD: alpha = 0.2 (eps + 1) in /255 units.

    It is the least-squares fit of the step sizes that maximized the loss in the paper's measurements
    (e.g. eps 4 -> alpha 1, eps 8 -> alpha 1.8).
    """
    return 0.2 * (eps * 255.0 + 1.0) / 255.0


def ascend(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    threat: ThreatModel,
    ctx: AttackContext,
    *,
    start: Tensor,
    size: float,
    steps: int,
) -> Tensor:
    """`steps` projected ascent steps on the criterion's objective from `start`, inside `threat`.

    `size` is the attack's step: a length for additive sets (alpha), a factor for ratio bounds
    (alpha_m). The gradient is restricted to the mask before it is normalized, so an L2 step's length
    is spent where pixels may change.
    """
    x_adv = start
    # a box-shaped set (Linf) is clamped to two precomputed tensors: one pass instead of `project`'s four
    box = threat.box(x) if steps > 1 else None
    for i in range(steps):
        _, value, grad = loss_and_grad(model, x_adv, criterion.objective)
        ctx.record(step=i, objective=float(value.mean()), queries=queries_of(model))
        if threat.mask is not None:
            grad = grad * threat.mask
        # in place from the second step on: the iterate is ours then, and a fresh video-sized tensor per
        # step costs page faults the step can do without
        x_adv = threat.advance(x_adv, x, threat.steepest(grad), size, inplace=i > 0)
        x_adv = x_adv.clamp_(*box) if box is not None else threat.project(x_adv, x)
        ctx.step(i + 1, steps)
    return x_adv


class LinfSteps:
    """Linf PGD settings shared by attacks with `eps`, `alpha` (a number or `auto`), `steps` and
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

    def start(self, x: Tensor, threat: ThreatModel, ctx: AttackContext) -> Tensor:
        """The clean video, or a seeded uniform point of the threat model's ball."""
        return threat.random_start(x, ctx.generator) if self.random_start else x

    def linf_pgd(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        """`steps` sign steps from `start` projected into `threat`."""
        start = self.start(x, threat, ctx)
        return ascend(model, x, criterion, threat, ctx, start=start, size=self.step_size(), steps=self.steps)
