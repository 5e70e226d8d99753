"""What counts as a successful attack: a criterion object rather than a targeted/untargeted mode flag."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from vidattack.errors import BadParameterError


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


class HasLabels(Protocol):
    """A model (view) that names its classes."""

    @property
    def labels(self) -> list[str]: ...


def resolve_target(classes: int | Sequence[str] | HasLabels, value: str | int) -> int:
    """The class index a target names: an index, or a label of the model (exact, then any case).

    `classes` is the number of classes, the label list, or a model with `labels`. Raises
    BadParameterError ("expected ..., got ...") with close labels suggested.
    """
    labels = classes if isinstance(classes, int | Sequence) else classes.labels
    count = labels if isinstance(labels, int) else len(labels)
    text = str(value).strip()
    if isinstance(value, int) or text.lstrip("-").isdigit():
        index = int(value)
        if not 0 <= index < count:
            raise BadParameterError(f"expected a target class in [0, {count - 1}], got {index}")
        return index
    names = [] if isinstance(labels, int) else list(labels)
    if text in names:
        return names.index(text)
    lowered = [name.lower() for name in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    if not close and 0 < len(names) <= 30:  # what fits, when it fits on a line or two
        hint = f" (labels: {', '.join(names)})"
    name = getattr(classes, "name", None)
    whose = f"a label of model {name}" if isinstance(name, str) else "a class label"
    raise BadParameterError(f"expected {whose} or an index in [0, {count - 1}], got {text!r}{hint}")
