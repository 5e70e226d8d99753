"""What counts as a successful attack: a criterion object rather than a targeted/untargeted mode flag."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Criterion:
    """Base criterion over video-level log-probabilities `(N, K)`.

    `labels` are the clean labels (untargeted) or the target classes (targeted), shape `(N,)`.
    """

    labels: Tensor

    targeted = False

    def is_adversarial(self, log_probs: Tensor) -> Tensor:
        """`(N,)` bool: does each prediction satisfy the criterion?"""
        raise NotImplementedError

    def objective(self, log_probs: Tensor) -> Tensor:
        """`(N,)` cross-entropy objective an attack maximizes: -log p_y, or log p_target when targeted."""
        picked = log_probs.gather(1, self.labels.view(-1, 1).to(log_probs.device)).squeeze(1)
        return picked if self.targeted else -picked

    def margin(self, log_probs: Tensor) -> Tensor:
        """`(N,)` margin that is positive exactly when the criterion holds (for margin losses)."""
        labels = self.labels.view(-1, 1).to(log_probs.device)
        own = log_probs.gather(1, labels).squeeze(1)
        others = log_probs.scatter(1, labels, float("-inf")).amax(dim=1)
        return own - others if self.targeted else others - own


@dataclass(frozen=True)
class Misclassification(Criterion):
    """Untargeted: the top-1 class differs from the clean label."""

    def is_adversarial(self, log_probs: Tensor) -> Tensor:
        return log_probs.argmax(dim=1) != self.labels.to(log_probs.device)


@dataclass(frozen=True)
class TargetedMisclassification(Criterion):
    """Targeted: the top-1 class is the target."""

    targeted = True

    def is_adversarial(self, log_probs: Tensor) -> Tensor:
        return log_probs.argmax(dim=1) == self.labels.to(log_probs.device)


def make_criterion(clean_labels: Tensor, target: int | Tensor | None) -> Criterion:
    """Misclassification of `clean_labels`, or TargetedMisclassification toward `target`."""
    if target is None:
        return Misclassification(clean_labels)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(clean_labels.shape[0]).clone()
    return TargetedMisclassification(t)
