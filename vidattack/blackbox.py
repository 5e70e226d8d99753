"""The query-only view of a model that black-box attacks get.

A `QueryModel` wraps a loaded model (a `BoundModel`: video -> log-probabilities) and answers one kind of
question: "what are the class probabilities of these videos?". It holds the model in a closure rather
than as an attribute or submodule, has no parameters, buffers or children, cannot be called like a
module, and returns detached tensors computed under `torch.no_grad()`. A black-box attack therefore
cannot take a gradient of the target, read its weights, or ask for anything but scores by accident.

Every video of every batch is one query and is counted. With a budget (`max_queries`) the count never
exceeds it:

- a batch larger than what is left is **truncated** to the remaining budget (the first `remaining`
  videos are classified, the rest are not and cost nothing); the caller sees fewer rows than it sent
  and knows the budget is spent (`exhausted`);
- a call made when nothing is left raises `vidattack.errors.QueryBudgetExceeded` before running.

Truncation rather than refusal lets an attack spend its budget exactly (the paper's query counts are
"queries used", and the report's count is then exact to the last video); an attack that cannot use a
partial batch simply stops there.

Queries are run in the float precision of the model (float32 for the bundled ones), never rounded to
8 bits: NES samples one millionth apart must reach the model as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from vidattack.errors import BadParameterError, QueryBudgetExceeded

__all__ = ["QueryModel"]


def _make_query_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    # The model lives only in this closure: no attribute, submodule or parameter of the QueryModel
    # leads back to it, so `.parameters()`, `.model`, `state_dict()` and `.apply()` all come up empty.
    def query(x: Tensor) -> Tensor:
        with torch.no_grad():
            return model(x).detach().float()

    return query


def _model_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


class QueryModel(nn.Module):
    """A score-only black box over `model` (video `(N, T, 3, H, W)` in [0, 1] -> log-probs `(N, K)`).

    Ask with `probs(x)` or `log_probs(x)` (the same information; log-probabilities keep their precision
    when a probability is close to 1, which NES needs). Both return detached `(n, K)` tensors with
    `n <= N` rows (fewer only when the budget ran out; see the module docstring). `queries` is the exact
    number of videos classified so far, `max_queries` the budget (None = unlimited), `remaining` what is
    left. Batches are split into forward passes of at most `batch_size` videos.

    It is an `nn.Module` only so it fits where the attack API expects a model; it has no parameters,
    no submodules, and calling it raises `TypeError`.
    """

    def __init__(self, model: nn.Module, *, max_queries: int | None = None, batch_size: int = 48) -> None:
        super().__init__()
        if max_queries is not None and (isinstance(max_queries, bool) or int(max_queries) < 0):
            raise BadParameterError(f"expected max_queries >= 0 or None, got {max_queries!r}")
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            raise BadParameterError(f"expected batch_size >= 1, got {batch_size!r}")
        self._query = _make_query_fn(model)
        self._dtype = _model_dtype(model)
        self._num_classes: int | None = getattr(model, "num_classes", None)
        self._max_queries = None if max_queries is None else int(max_queries)
        self._batch_size = int(batch_size)
        self._queries = 0
        self._forward_passes = 0

    # -- what an attack may read ----------------------------------------------------------------

    @property
    def queries(self) -> int:
        """Videos classified so far (every video of every batch counts once)."""
        return self._queries

    @property
    def forward_passes(self) -> int:
        """Forward passes run so far (batches of at most `batch_size` videos)."""
        return self._forward_passes

    @property
    def max_queries(self) -> int | None:
        """The query budget, or None for no limit."""
        return self._max_queries

    @property
    def remaining(self) -> int | None:
        """Queries left in the budget (None when unlimited)."""
        if self._max_queries is None:
            return None
        return self._max_queries - self._queries

    @property
    def exhausted(self) -> bool:
        """True when the budget is spent and any further call would raise."""
        return self._max_queries is not None and self._queries >= self._max_queries

    @property
    def batch_size(self) -> int:
        """The most videos sent to the model in one forward pass."""
        return self._batch_size

    @property
    def num_classes(self) -> int | None:
        """The number of classes, when the wrapped model declares it (black boxes usually do)."""
        return self._num_classes

    # -- the one question ------------------------------------------------------------------------

    def log_probs(self, x: Tensor) -> Tensor:
        """Log-probabilities `(n, K)` of the videos `x` `(N, T, 3, H, W)`, detached; `n = min(N, remaining)`.

        Raises `QueryBudgetExceeded` (without running anything) when the budget is already spent.
        """
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise BadParameterError(f"expected a batch of videos (N, T, 3, H, W), got {shape}")
        if not x.is_floating_point():
            # an integer video here means someone quantized a query; refuse rather than guess units
            raise BadParameterError(f"expected a float video in [0, 1], got dtype {x.dtype}")
        n = int(x.shape[0])
        if self.exhausted:
            raise QueryBudgetExceeded(
                f"expected at most {self._max_queries} queries, but the budget is spent "
                f"({self._queries} used) and {n} more were asked for"
            )
        left = self.remaining
        if left is not None and n > left:
            n = left
        x = x[:n].detach()
        if x.dtype != self._dtype:
            x = x.to(self._dtype)
        outs = []
        for start in range(0, n, self._batch_size):
            chunk = x[start : start + self._batch_size]
            # count before running: a query that raised inside the model was still asked
            self._queries += int(chunk.shape[0])
            self._forward_passes += 1
            outs.append(self._query(chunk))
        if not outs:
            return torch.empty(0, self._num_classes or 0)
        return torch.cat(outs, dim=0)

    def probs(self, x: Tensor) -> Tensor:
        """Class probabilities `(n, K)` of the videos `x`; the same query (and cost) as `log_probs`."""
        return self.log_probs(x).exp()

    # -- what it refuses ---------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("QueryModel is a black box: ask for scores with .probs(x) or .log_probs(x)")

    def __repr__(self) -> str:
        budget = "unlimited" if self._max_queries is None else str(self._max_queries)
        return f"QueryModel(queries={self._queries}, max_queries={budget}, batch_size={self._batch_size})"
