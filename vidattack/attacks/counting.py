"""Counting what an attack asks of the model: white-box forward passes ("queries") per video.

`CountingModel` wraps the model a white-box attack gets (black-box attacks get the query-only
`vidattack.attacks.blackbox.QueryModel` instead); `queries_of` reads either, so no attack digs a
counter out of its model by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from vidattack.attacks.blackbox.query_model import QueryModel


class CountingModel(nn.Module):
    """Forwards to a model and counts the videos it was asked to classify (white-box "queries").

    It can also hold one primed forward pass: the template's clean forward, kept with its graph, is
    handed to the first `loss_and_grad` call at the clean video instead of running the model again.
    Iterative attacks that start at the clean video thus pay no extra forward for the clean label.
    """

    def __init__(self, model: nn.Module, num_videos: int = 1) -> None:
        super().__init__()
        self.model = model
        self.queries = 0
        # per-video counts: a batch of several videos is several jobs, each with its own query count
        self.video_queries = [0] * num_videos
        self._owners: list[int] | None = None
        self.per_video_known = True
        self._primed: tuple[Tensor, Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        self._count(int(x.shape[0]))
        return self.model(x)

    def _count(self, rows: int) -> None:
        self.queries += rows
        owners = self._owners
        if owners is None:
            owners = list(range(len(self.video_queries)))
        if len(owners) == 1:
            self.video_queries[owners[0]] += rows  # candidates of one video (a region search)
        elif rows == len(owners):
            for v in owners:
                self.video_queries[v] += 1
        else:
            # a sub-batch of unknown videos (an attack that is not `batchable`, e.g. universal's
            # mini-batches): only the total means something then
            self.per_video_known = False

    @contextmanager
    def owners(self, videos: list[int]) -> Iterator[None]:
        """Count the forwards inside the block as made for `videos` (one row each, or all for one)."""
        previous, self._owners = self._owners, list(videos)
        try:
            yield
        finally:
            self._owners = previous

    def prime(self, x: Tensor, x_req: Tensor, log_probs: Tensor) -> None:
        self._primed = (x, x_req, log_probs)

    def take_primed(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """The primed `(input requiring grad, log-probs with graph)` if `x` is the primed tensor itself."""
        primed, self._primed = self._primed, None
        if primed is None or primed[0] is not x:
            return None
        self._count(int(x.shape[0]))
        return primed[1], primed[2]

    def discard_primed(self) -> None:
        self._primed = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)


def queries_of(model: nn.Module) -> int:
    """Videos `model` has classified so far: the count of a `CountingModel` or `QueryModel`, else 0."""
    return int(getattr(model, "queries", 0))


def video_queries_of(model: nn.Module, num_videos: int) -> list[int]:
    """Per-video query counts of a `CountingModel` or `QueryModel` (the total for a single video)."""
    counts: list[int] | None = None
    if isinstance(model, CountingModel):
        counts = model.video_queries if model.per_video_known else None
    elif isinstance(model, QueryModel):
        counts = model.queries_per_video
    if counts is None or len(counts) != num_videos:
        return [queries_of(model)] if num_videos == 1 else []
    return [int(c) for c in counts]


@contextmanager
def counting_for(model: nn.Module, videos: list[int]) -> Iterator[None]:
    """Forwards inside the block are made for `videos` of the batch: a search that evaluates one
    video's candidates wraps them in this so each video's query count is its own."""
    if isinstance(model, CountingModel):
        with model.owners(videos):
            yield
    else:
        yield
