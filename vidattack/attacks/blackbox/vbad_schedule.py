"""V-BAD's schedule pieces (Jiang et al., ACM MM 2019, and their official code): one video's counted
questions to the black box, where its schedule ended, Algorithm 1's adaptive step range and eps
decrement for targeted attacks, and the projected PGD step. `vbad.py` runs them."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from torch import Tensor

from vidattack.attacks.blackbox.query_model import QueryModel

# The official code's delta-eps schedule: (floor, failures before a decay, divisor) per period.
_DELTA_SCHEDULE: tuple[tuple[float, int, float], ...] = (
    (0.01, 1, 2.0),
    (0.003, 10, 1.5),
    (0.001, 100, 1.5),
    (0.0, 100, 1.5),
)
_EXPLORE_WINDOW = 5  # targeted: plain steps whose success rate halves the step range


class OutOfQueries(Exception):
    """A video's budget ran out: the schedule stops and returns its best video so far."""


@dataclass
class VideoQueries:
    """One attacked video's questions to the black box (all charged to that video)."""

    model: QueryModel
    video: int

    @property
    def used(self) -> int:
        """This video's queries so far, its clean-label query included."""
        return self.model.video_queries(self.video)

    def ask(self, videos: Tensor) -> Tensor:
        """Log-probabilities `(P, K)` of all of `videos` `(P, T, 3, H, W)`, or `OutOfQueries` once the budget
        cannot answer them all (what was left is still spent: a partial NES population is asked, then
        dropped)."""
        if self.model.remaining_of(self.video) == 0:
            raise OutOfQueries
        lp = self.model.log_probs(videos, video=self.video)
        if lp.shape[0] < videos.shape[0]:
            raise OutOfQueries
        return lp


@dataclass
class Outcome:
    """Where one video's schedule ended: its video, whether it succeeded, why it stopped, after how
    many iterations, at which eps and (if it succeeded) after how many queries."""

    video: Tensor
    success: bool
    stopped: str
    iterations: int
    eps: float
    success_queries: int | None = None


@dataclass
class TargetedSchedule:
    """Algorithm 1's step range and eps decrement, adapted as candidates are accepted or refused."""

    max_lr: float
    min_lr: float
    delta: float
    base_lr: tuple[float, float]
    explore: deque[bool] = field(default_factory=lambda: deque(maxlen=_EXPLORE_WINDOW))
    reduce_fail: int = 0
    period: int = 0

    def shrunk(self) -> None:
        """eps went down: the step range starts over."""
        self.max_lr, self.min_lr = self.base_lr
        self.explore.clear()
        self.reduce_fail = 0

    def stepped(self, accepted: bool) -> None:
        """A step at the current eps (eps could not shrink), accepted or not."""
        self.explore.append(accepted)
        self.reduce_fail += 1

    def adapt(self) -> bool:
        """Decay delta after repeated failures to shrink, halve the step range after failed steps;
        False when delta fell below 1e-5 (the attack has converged)."""
        floor, patience, divisor = _DELTA_SCHEDULE[self.period]
        if self.reduce_fail >= patience:
            self.delta = max(self.delta / divisor, floor)
            if self.delta <= floor and self.period < len(_DELTA_SCHEDULE) - 1:
                self.period += 1
            if self.delta < 1e-5:
                return False
            self.reduce_fail = 0
        window_full = len(self.explore) == _EXPLORE_WINDOW
        if window_full and self.min_lr > 1e-7 and sum(self.explore) < len(self.explore) / 2:
            self.max_lr, self.min_lr = self.max_lr / 2, self.min_lr / 2
            self.explore.clear()
        return True


def pgd_step(x_it: Tensor, direction: Tensor, lr: float, x: Tensor, eps: float) -> Tensor:
    """One PGD step `(T, 3, H, W)` projected to the Linf ball of radius eps around x and to [0, 1]."""
    return torch.minimum(torch.maximum(x_it + lr * direction, x - eps), x + eps).clamp(0, 1)
