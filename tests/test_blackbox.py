"""The query-only black box: it answers with scores, counts every video, and never exceeds its budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidattack.attacks.blackbox import QueryModel
from vidattack.errors import BadParameterError, QueryBudgetExceeded


class Recorder(nn.Module):
    """A model that counts the videos it sees and keeps the last input, to check the wrapper against."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(-1.0, 1.0, num_classes))
        self.seen = 0
        self.calls = 0
        self.last: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return self.weight.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        self.calls += 1
        self.last = x
        # one pixel with a large gain: a 1e-6 change of it is visible in the output
        first = x[:, :1, 0, 0, 0] * 1e4
        return torch.log_softmax(first * self.weight, dim=1)


def videos(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 3, 6, 5, generator=g)


def test_query_model_exposes_scores_and_nothing_else():
    inner = Recorder()
    qm = QueryModel(inner)
    assert list(qm.parameters()) == [] and list(qm.buffers()) == [] and list(qm.children()) == []
    assert qm.state_dict() == {}
    assert not hasattr(qm, "model") and not hasattr(qm, "net")
    assert qm.num_classes == 4
    with pytest.raises(TypeError, match="black box"):
        qm(videos(1))


def test_answers_are_detached_probabilities_of_the_wrapped_model():
    inner = Recorder()
    qm = QueryModel(inner)
    x = videos(3).requires_grad_(True)
    p = qm.probs(x)
    assert not p.requires_grad and p.grad_fn is None
    assert inner.last is not None and not inner.last.requires_grad
    torch.testing.assert_close(p.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(qm.log_probs(x.detach()), inner(x.detach()).detach())


def test_every_video_of_every_batch_is_counted_exactly():
    inner = Recorder()
    qm = QueryModel(inner, batch_size=3)
    qm.probs(videos(7))
    qm.log_probs(videos(2))
    assert qm.queries == inner.seen == 9
    assert qm.forward_passes == 4 and inner.calls == 4  # 3 + 3 + 1, then 2


def test_a_batch_past_the_budget_is_truncated_and_the_next_call_refused_before_running():
    inner = Recorder()
    qm = QueryModel(inner, max_queries=10, batch_size=4)
    assert qm.probs(videos(4)).shape == (4, 4)
    assert qm.probs(videos(4)).shape == (4, 4)
    out = qm.probs(videos(4))  # only 2 left
    assert out.shape == (2, 4)
    assert qm.queries == inner.seen == 10 and qm.remaining == 0 and qm.exhausted
    with pytest.raises(QueryBudgetExceeded, match="at most 10 queries"):
        qm.probs(videos(1))
    assert inner.seen == 10, "a refused query must not reach the model"


def test_queries_reach_the_model_in_float_never_rounded():
    inner = Recorder()
    qm = QueryModel(inner)
    x = videos(1)
    nudged = x.clone()
    nudged[0, 0, 0, 0, 0] += 1e-6
    a, b = qm.log_probs(x), qm.log_probs(nudged)
    assert inner.last is not None and torch.equal(inner.last, nudged)
    assert not torch.equal(a, b), "a 1e-6 change must reach the model"


def test_rejects_what_is_not_a_float_video_batch():
    qm = QueryModel(Recorder())
    with pytest.raises(BadParameterError, match="float video"):
        qm.probs((videos(1) * 255).to(torch.uint8))
    with pytest.raises(BadParameterError, match=r"\(N, T, 3, H, W\)"):
        qm.probs(torch.rand(2, 3, 4, 4))
    with pytest.raises(BadParameterError, match="max_queries"):
        QueryModel(Recorder(), max_queries=-1)
    with pytest.raises(BadParameterError, match="batch_size"):
        QueryModel(Recorder(), batch_size=0)


def test_each_attacked_video_has_its_own_budget():
    inner = Recorder()
    qm = QueryModel(inner, max_queries=5, videos=2, batch_size=4)
    assert qm.log_probs(videos(7), video=0).shape == (5, 4)  # truncated at video 0's budget
    assert qm.remaining_of(0) == 0 and qm.remaining_of(1) == 5 and not qm.exhausted
    assert qm.log_probs(videos(3), video=1).shape == (3, 4)
    with pytest.raises(QueryBudgetExceeded, match="video 0 has spent its budget"):
        qm.log_probs(videos(1), video=0)
    assert qm.queries_per_video == [5, 3] and qm.queries == inner.seen == 8


def test_one_query_per_video_and_held_queries():
    inner = Recorder()
    qm = QueryModel(inner, max_queries=3, videos=2)
    qm.log_probs_each(videos(2))  # the template's clean labels: one per video
    assert qm.queries_per_video == [1, 1]
    with qm.holding(1):  # the judging query, kept out of the attack's reach
        assert qm.remaining_of(0) == 1
        qm.log_probs(videos(4), video=0)
        assert qm.remaining_of(0) == 0
    assert qm.remaining_of(0) == 1
    qm.log_probs_each(videos(2))
    assert qm.queries_per_video == [3, 2] and qm.queries == inner.seen == 5
    with pytest.raises(QueryBudgetExceeded, match="video 0"):
        qm.log_probs_each(videos(2))
    with pytest.raises(BadParameterError, match="one video per attacked video"):
        qm.log_probs_each(videos(3))
