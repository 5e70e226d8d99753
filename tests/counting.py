"""An independent query counter, shared by the tests and the benchmarks that check query budgets.

It is deliberately not the library's `QueryModel` or `CountingModel`: a budget is only proven when
something the attack does not control counts what reached the model.
"""

from __future__ import annotations

import torch
from torch import nn


class VideoCounter(nn.Module):
    """Wraps a model and counts the videos every forward pass asked it to score (`seen`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        return self.model(x)
