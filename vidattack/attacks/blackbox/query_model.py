"""The query-only view of a model that black-box attacks get.

A `QueryModel` wraps a loaded model (a `BoundModel`: video -> log-probabilities) and answers one kind of
question: "what are the class probabilities of these videos?". It holds the model in a closure rather
than as an attribute or submodule, has no parameters, buffers or children, cannot be called like a
module, and returns detached tensors computed under `torch.no_grad()`. A black-box attack therefore
cannot take a gradient of the target, read its weights, or ask for anything but scores by accident.

Every video of every batch is one query and is counted, against the attacked video it is about: an
attack on `videos` clean videos asks `log_probs(x, video=i)` about perturbations of video i, and
`max_queries` is each video's budget (the whole call's is `videos x max_queries`). The template's own
queries (the clean label, the final judging) use `log_probs_each`, one row per video. The count of a
video never exceeds its budget:

- a batch larger than what is left is **truncated** to the remaining budget (the first `remaining`
  videos are classified, the rest are not and cost nothing); the caller sees fewer rows than it sent
  and knows the budget is spent;
- a call made when nothing is left raises `vidattack.errors.QueryBudgetExceeded` before running;
- `holding(k)` keeps k queries of each video back while an attack runs, so the template can always
  judge the result within the budget.

Truncation rather than refusal lets an attack spend its budget exactly (the paper's query counts are
"queries used", and the report's count is then exact to the last video); an attack that cannot use a
partial batch simply stops there.

A model that meters its own cost (a deployed one: `metered(x, allowance) -> (log_probs, cost)`, where
a request that failed and was sent again costs one more) is charged what it reports, and is never
allowed more than what the video has left, so the budget holds for every request that reaches it.

Queries are run in the float precision of the model (float32 for the bundled ones), never rounded to
8 bits: NES samples one millionth apart must reach the model as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from vidattack.errors import BadParameterError, QueryBudgetExceeded

__all__ = ["QueryModel"]


def _make_query_fn(model: nn.Module) -> Callable[[Tensor, int | None], tuple[Tensor, int]]:
    # The model lives only in this closure: no attribute, submodule or parameter of the QueryModel
    # leads back to it, so `.parameters()`, `.model`, `state_dict()` and `.apply()` all come up empty.
    metered = getattr(model, "metered", None)

    def query(x: Tensor, allowance: int | None) -> tuple[Tensor, int]:
        with torch.no_grad():
            if metered is not None:
                out, cost = metered(x, allowance)
                return out.detach().float(), int(cost)
            return model(x).detach().float(), int(x.shape[0])

    return query


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _check_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise BadParameterError(f"expected a batch of videos (N, T, 3, H, W), got {shape}")
    if not x.is_floating_point():
        # an integer video here means someone quantized a query; refuse rather than guess units
        raise BadParameterError(f"expected a float video in [0, 1], got dtype {x.dtype}")


class QueryModel(nn.Module):
    """A score-only black box over `model` (video `(N, T, 3, H, W)` in [0, 1] -> log-probs `(N, K)`).

    Ask with `probs(x, video=i)` or `log_probs(x, video=i)` (the same information; log-probabilities
    keep their precision when a probability is close to 1, which NES needs). Both return detached
    `(n, K)` tensors with `n <= N` rows (fewer only when video i's budget ran out; see the module
    docstring). `queries` is the exact number of videos classified so far, `video_queries(i)` those
    charged to attacked video i, `max_queries` each video's budget (None = unlimited),
    `remaining_of(i)` what video i has left. Batches are split into forward passes of at most
    `batch_size` videos.

    It is an `nn.Module` only so it fits where the attack API expects a model; it has no parameters,
    no submodules, and calling it raises `TypeError`.
    """

    def __init__(
        self, model: nn.Module, *, max_queries: int | None = None, videos: int = 1, batch_size: int = 48
    ) -> None:
        super().__init__()
        if max_queries is not None and (isinstance(max_queries, bool) or int(max_queries) < 0):
            raise BadParameterError(f"expected max_queries >= 0 or None, got {max_queries!r}")
        if isinstance(videos, bool) or int(videos) < 1:
            raise BadParameterError(f"expected videos >= 1, got {videos!r}")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise BadParameterError(f"expected batch_size >= 1, got {batch_size!r}")
        self._query = _make_query_fn(model)
        self._dtype = _model_dtype(model)
        self._num_classes: int | None = getattr(model, "num_classes", None)
        self._max_queries = None if max_queries is None else int(max_queries)
        self._batch_size = int(batch_size)
        self._used = [0] * int(videos)
        self._held = 0
        self._forward_passes = 0

    # -- what an attack may read ----------------------------------------------------------------

    @property
    def queries(self) -> int:
        """Videos classified so far, all attacked videos together (every video of every batch counts once)."""
        return sum(self._used)

    @property
    def queries_per_video(self) -> list[int]:
        """Videos classified so far, per attacked video."""
        return list(self._used)

    def video_queries(self, video: int) -> int:
        """Videos classified so far on behalf of attacked video `video`."""
        return self._used[video]

    @property
    def videos(self) -> int:
        """How many clean videos share this black box (each has its own budget)."""
        return len(self._used)

    @property
    def forward_passes(self) -> int:
        """Forward passes run so far (batches of at most `batch_size` videos)."""
        return self._forward_passes

    @property
    def max_queries(self) -> int | None:
        """Each attacked video's query budget, or None for no limit."""
        return self._max_queries

    def remaining_of(self, video: int) -> int | None:
        """Queries video `video` may still make (None when unlimited); held queries are not available."""
        if self._max_queries is None:
            return None
        return max(self._max_queries - self._used[video] - self._held, 0)

    @property
    def remaining(self) -> int | None:
        """Queries left to all videos together (None when unlimited)."""
        if self._max_queries is None:
            return None
        return sum(self.remaining_of(v) or 0 for v in range(self.videos))

    @property
    def exhausted(self) -> bool:
        """True when no video has a query left and any further call would raise."""
        return self.remaining == 0

    @property
    def batch_size(self) -> int:
        """The most videos sent to the model in one forward pass."""
        return self._batch_size

    @property
    def num_classes(self) -> int | None:
        """The number of classes, when the wrapped model declares it (black boxes usually do)."""
        return self._num_classes

    # -- the one question ------------------------------------------------------------------------

    def log_probs(self, x: Tensor, *, video: int = 0) -> Tensor:
        """Log-probabilities `(n, K)` of the videos `x` `(N, T, 3, H, W)`, all charged to attacked video
        `video`; detached; `n = min(N, remaining_of(video))`.

        Raises `QueryBudgetExceeded` (without running anything) when that video's budget is already spent.
        """
        _check_batch(x)
        n = int(x.shape[0])
        left = self.remaining_of(video)
        if left == 0:
            raise QueryBudgetExceeded(
                f"expected at most {self._max_queries} queries per video, but video {video} has spent its "
                f"budget ({self._used[video]} used, {self._held} held back) and {n} more were asked for"
            )
        if left is not None and n > left:
            n = left
        outs = []
        for start in range(0, n, self._batch_size):
            chunk = x[start : min(n, start + self._batch_size)]
            size = int(chunk.shape[0])
            allowance = None if left is None else left - start
            # count before running: a query that raised inside the model was still asked
            self._used[video] += size
            out, cost = self._run(chunk, allowance)
            self._used[video] += cost - size  # a metered model's retried requests
            outs.append(out)
        if not outs:
            return torch.empty(0, self._num_classes or 0)
        return torch.cat(outs, dim=0)

    def log_probs_each(self, x: Tensor) -> Tensor:
        """Log-probabilities `(videos, K)` of one video per attacked video (row i is charged to video i):
        the template's clean-label and judging queries. Raises `QueryBudgetExceeded` when any video has
        nothing left, before running anything."""
        _check_batch(x)
        if int(x.shape[0]) != self.videos:
            raise BadParameterError(
                f"expected one video per attacked video ({self.videos}), got {x.shape[0]}"
            )
        spent = [v for v in range(self.videos) if self.remaining_of(v) == 0]
        if spent:
            raise QueryBudgetExceeded(
                f"expected at most {self._max_queries} queries per video, but video {spent[0]} has spent its "
                "budget and one more was asked for"
            )
        outs = []
        for start in range(0, self.videos, self._batch_size):
            chunk = x[start : start + self._batch_size]
            size = int(chunk.shape[0])
            # retried requests are charged to the chunk's first video, so each video's budget still holds;
            # a video's first query (the template's clean label) leaves the judging query's slot alone
            first = 1 if self._used[start] == 0 else 0
            spare = (
                None
                if self._max_queries is None
                else max(self._max_queries - self._used[start] - 1 - first, 0)
            )
            for v in range(start, start + size):
                self._used[v] += 1
            out, cost = self._run(chunk, None if spare is None else size + spare)
            self._used[start] += cost - size
            outs.append(out)
        return torch.cat(outs, dim=0)

    def probs(self, x: Tensor, *, video: int = 0) -> Tensor:
        """Class probabilities `(n, K)` of the videos `x`; the same query (and cost) as `log_probs`."""
        return self.log_probs(x, video=video).exp()

    @contextmanager
    def holding(self, per_video: int) -> Iterator[None]:
        """Keep `per_video` queries of every video out of reach while the block runs (the template holds
        back its judging query, so an attack that spends everything still leaves room to judge it)."""
        self._held += per_video
        try:
            yield
        finally:
            self._held -= per_video

    def _run(self, chunk: Tensor, allowance: int | None) -> tuple[Tensor, int]:
        self._forward_passes += 1
        chunk = chunk.detach()
        return self._query(chunk if chunk.dtype == self._dtype else chunk.to(self._dtype), allowance)

    # -- what it refuses ---------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("QueryModel is a black box: ask for scores with .probs(x) or .log_probs(x)")

    def __repr__(self) -> str:
        budget = "unlimited" if self._max_queries is None else str(self._max_queries)
        return (
            f"QueryModel(queries={self.queries}, max_queries={budget} per video, videos={self.videos}, "
            f"batch_size={self._batch_size})"
        )
