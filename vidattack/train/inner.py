"""The inner maximisation of adversarial training (any registered white-box attack at a budget, run on
the current weights) and the accuracies and losses measured with it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.registry import attack_class, get_attack_from_text
from vidattack.errors import BadParameterError
from vidattack.models.view import FramePlan, ModelView
from vidattack.train.clips import ClipSet
from vidattack.train.config import TrainConfig


class InnerAttack:
    """The inner maximisation: `config.attack` at a given budget, run on the current weights.

    `attacker(net, view, plan, x, y, eps, seed)` returns the adversarial clips `(B, T', 3, H, W)` for true
    labels `y`; the budget is the attack's own (`eps`, or `eps_m` for MultAV) and a null budget (0, or a
    ratio of 1) returns `x` without running anything. The net is put in eval mode and frozen for the
    attack and restored afterwards.
    """

    def __init__(self, config: TrainConfig) -> None:
        if config.attack is None:
            raise BadParameterError("expected an attack for adversarial training, got none")
        self.name = config.attack
        self.cls: type[Attack] = attack_class(config.attack)
        if not self.cls.white_box:
            raise BadParameterError(
                f"expected a white-box attack for the inner maximisation, got {config.attack} (black-box)"
            )
        self.config = config
        eps_name = self.cls.common_parameter("eps")
        spec = {s.name: s for s in self.cls.params()}[eps_name]
        self.eps_name = eps_name
        self.eps_default = float(spec.default)
        # the budget at which the attack changes nothing: 0 for additive sets, a ratio of 1 for MultAV
        self.null_budget = float(spec.min) if spec.min is not None else 0.0
        self._cache: dict[float, Attack] = {}
        self.get(config.eps if config.eps is not None else self.eps_default)  # fail early on bad settings

    def is_null(self, eps: float) -> bool:
        return eps <= self.null_budget

    def get(self, eps: float) -> Attack:
        if eps not in self._cache:
            alpha = self.config.alpha
            if alpha == "eps":  # the paper's alpha = eps (alpha_m = eps_m for MultAV)
                alpha = eps
            self._cache[eps] = get_attack_from_text(
                self.name, dict(self.config.attack_settings), eps=eps, alpha=alpha, steps=self.config.steps
            )
        return self._cache[eps]

    def __call__(
        self, net: nn.Module, view: ModelView, plan: FramePlan, x: Tensor, y: Tensor, eps: float, seed: int
    ) -> Tensor:
        if self.is_null(eps):
            return x
        was_training = net.training
        grads = [p.requires_grad for p in net.parameters()]
        net.eval()
        net.requires_grad_(False)  # the attack differentiates w.r.t. the input only
        try:
            result = self.get(eps)(view.bind(plan), x, labels=y, seed=seed)
        finally:
            for p, g in zip(net.parameters(), grads, strict=True):
                p.requires_grad_(g)
            net.train(was_training)
        return result.adversarial


@torch.no_grad()
def clean_accuracy(view: ModelView, data: ClipSet, batch: int = 25) -> float:
    """Accuracy of `view` (as it is: set eval mode first) on `data`."""
    bound = view.bind(data.plan)
    correct = 0
    for i in range(0, len(data), batch):
        x, y = data.batch(torch.arange(i, min(i + batch, len(data))))
        correct += int((bound(x).argmax(1) == y).sum())
    return correct / max(len(data), 1)


def robust_accuracy(
    view: ModelView, data: ClipSet, attacker: InnerAttack, eps: float, *, seed: int = 0, batch: int = 25
) -> float:
    """Accuracy on `data` under the attack at budget `eps` (eval mode)."""
    view.net.eval()
    bound = view.bind(data.plan)
    correct = 0
    for i in range(0, len(data), batch):
        idx = torch.arange(i, min(i + batch, len(data)))
        x, y = data.batch(idx)
        x_adv = attacker(view.net, view, data.plan, x, y, eps, seed + i)
        with torch.no_grad():
            correct += int((bound(x_adv).argmax(1) == y).sum())
    return correct / max(len(data), 1)


def budget_losses(
    view: ModelView, data: ClipSet, attacker: InnerAttack, budgets: Sequence[float], seed: int
) -> list[float]:
    """Eq. 8's numerators: the summed adversarial loss of the current model at every budget."""
    view.net.eval()
    bound = view.bind(data.plan)
    out = []
    for eps in budgets:
        total = 0.0
        for i in range(0, len(data), 16):
            idx = torch.arange(i, min(i + 16, len(data)))
            x, y = data.batch(idx)
            x_adv = attacker(view.net, view, data.plan, x, y, eps, seed + i)
            with torch.no_grad():
                total += float(F.nll_loss(bound(x_adv), y, reduction="sum"))
        out.append(total)
    return out
