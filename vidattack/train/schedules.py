"""Attack-budget schedules for adversarial training (Kinfu and Vidal, "Analysis and Extensions of
Adversarial Training for Video Classification", CVPRW 2022, Sec. 4).

A schedule says which budget (the attack's `eps`, or `eps_m` for MultAV) the inner maximisation uses for
each batch:

- `FixedBudget`: Madry AT, one budget throughout (eq. 5).
- `CurriculumBudget`: CAT (Sec. 4.2): the budget steps through an ordered set of levels as training
  proceeds, increasing (`up`, the paper's best, 0 -> 12/255) or decreasing (`down`).
- `AdaptiveBudget`: AAT (Sec. 4.1, Algorithm 1): the budget is drawn per batch from a distribution P
  over a discrete set E, randomly initialised and, every `min(xi, K / |E|)` epochs, reset by eq. 8 to
  each budget's share of the summed adversarial loss: budgets the model still loses to are drawn more.

Schedules are plain state machines, seeded and serialisable (`state_dict`), so a resumed run draws the
same budgets as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from vidattack.errors import BadParameterError

#: The paper's budget set for AAT and the range of CAT: E = {0, 2, 4, ..., 12} / 255 (Sec. 5.1).
PAPER_BUDGETS: tuple[float, ...] = tuple(k / 255 for k in range(0, 13, 2))
#: The paper's adaptation period for AAT, in epochs (Sec. 5.1).
PAPER_XI = 10


class Schedule(Protocol):
    """What the training loop asks of a schedule."""

    name: str

    def budget(self, epoch: int, batch: int, batches_per_epoch: int) -> float:
        """The budget for batch `batch` of epoch `epoch` (both from 0)."""
        ...

    def wants_update(self, epoch: int) -> bool:
        """Whether the loop should measure per-budget losses after epoch `epoch` (AAT only)."""
        ...

    def update(self, losses: Sequence[float]) -> None:
        """Eq. 8: new probabilities from the summed adversarial loss at each budget."""
        ...

    @property
    def budgets(self) -> tuple[float, ...]:
        """Every budget the schedule can return."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class FixedBudget:
    """Madry AT: budget `eps` for every batch."""

    eps: float
    name: str = "fixed"

    def budget(self, epoch: int, batch: int, batches_per_epoch: int) -> float:
        return self.eps

    def wants_update(self, epoch: int) -> bool:
        return False

    def update(self, losses: Sequence[float]) -> None:
        raise BadParameterError("a fixed budget has no distribution to update")

    @property
    def budgets(self) -> tuple[float, ...]:
        return (self.eps,)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class CurriculumBudget:
    """CAT: the budget climbs (or descends) through `levels` as training proceeds.

    Training's `epochs * batches_per_epoch` iterations are cut into `len(levels)` equal stages and stage
    i uses `levels[i]` (`levels` sorted ascending for `up`, descending for `down`). The paper increases
    the budget "at every xi-th iteration" from 0 to 12; with the stage length set by the run's length,
    every level is trained on for the same number of iterations and the last stage ends the run.
    """

    levels: tuple[float, ...]
    epochs: int
    direction: Literal["up", "down"] = "up"
    name: str = "curriculum"

    def __post_init__(self) -> None:
        if not self.levels:
            raise BadParameterError("expected at least one budget level for the curriculum, got none")
        if self.epochs < 1:
            raise BadParameterError(f"expected at least one epoch, got {self.epochs}")
        if self.direction not in ("up", "down"):
            raise BadParameterError(f"expected curriculum direction up or down, got {self.direction!r}")
        ordered = sorted(self.levels)
        self.levels = tuple(ordered if self.direction == "up" else ordered[::-1])

    def budget(self, epoch: int, batch: int, batches_per_epoch: int) -> float:
        total = self.epochs * batches_per_epoch
        it = epoch * batches_per_epoch + batch
        stage = min(it * len(self.levels) // max(total, 1), len(self.levels) - 1)
        return self.levels[stage]

    def wants_update(self, epoch: int) -> bool:
        return False

    def update(self, losses: Sequence[float]) -> None:
        raise BadParameterError("a curriculum has no distribution to update")

    @property
    def budgets(self) -> tuple[float, ...]:
        return self.levels

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


@dataclass
class AdaptiveBudget:
    """AAT (Algorithm 1): budgets drawn from P over `levels`, P adapted by eq. 8.

    - line 2: P is randomly initialised (a normalised uniform draw, seeded);
    - line 5: each batch draws eps ~ P;
    - line 10: after epoch k (1-based) with k mod period == 0, period = max(1, floor(min(xi, K / |E|))),
      the loop measures the summed adversarial loss of the current model at every budget on the same
      videos and calls `update` (lines 11-12, eq. 8): P(eps_i) = L_i / sum_j L_j.
    """

    levels: tuple[float, ...]
    epochs: int
    xi: int = PAPER_XI
    seed: int = 0
    name: str = "adaptive"
    probs: torch.Tensor = field(init=False)
    generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        if not self.levels:
            raise BadParameterError("expected at least one budget for adaptive training, got none")
        if self.xi < 1:
            raise BadParameterError(f"expected xi >= 1 epochs between adaptations, got {self.xi}")
        if self.epochs < 1:
            raise BadParameterError(f"expected at least one epoch, got {self.epochs}")
        self.levels = tuple(self.levels)
        self.generator = torch.Generator().manual_seed(int(self.seed))
        raw = torch.rand(len(self.levels), generator=self.generator, dtype=torch.float64) + 1e-3
        self.probs = raw / raw.sum()

    @property
    def period(self) -> int:
        """Epochs between adaptations: min(xi, K / |E|), at least 1."""
        return max(1, math.floor(min(self.xi, self.epochs / len(self.levels))))

    def budget(self, epoch: int, batch: int, batches_per_epoch: int) -> float:
        i = int(torch.multinomial(self.probs, 1, generator=self.generator))
        return self.levels[i]

    def wants_update(self, epoch: int) -> bool:
        return (epoch + 1) % self.period == 0

    def update(self, losses: Sequence[float]) -> None:
        if len(losses) != len(self.levels):
            raise BadParameterError(f"expected {len(self.levels)} losses (one per budget), got {len(losses)}")
        t = torch.tensor([max(float(v), 0.0) for v in losses], dtype=torch.float64)
        total = float(t.sum())
        # a model with zero loss at every budget has nothing to prefer: uniform
        self.probs = t / total if total > 0 and math.isfinite(total) else torch.full_like(t, 1 / len(t))

    @property
    def budgets(self) -> tuple[float, ...]:
        return self.levels

    def state_dict(self) -> dict[str, Any]:
        return {"probs": self.probs.clone(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.probs = state["probs"].to(torch.float64)
        self.generator.set_state(state["generator"])


def make_schedule(
    kind: str,
    *,
    eps: float,
    budgets: Sequence[float] | None,
    epochs: int,
    xi: int = PAPER_XI,
    seed: int = 0,
    direction: Literal["up", "down"] = "up",
) -> Schedule:
    """The schedule `kind` (`fixed`, `adaptive`, `curriculum`); `budgets` default to E = {0, 2, .., 12}/255."""
    levels = tuple(budgets) if budgets else PAPER_BUDGETS
    if kind == "fixed":
        return FixedBudget(eps)
    if kind == "adaptive":
        return AdaptiveBudget(levels, epochs=epochs, xi=xi, seed=seed)
    if kind == "curriculum":
        return CurriculumBudget(levels, epochs=epochs, direction=direction)
    raise BadParameterError(f"expected a schedule fixed, adaptive or curriculum, got {kind!r}")
