"""Memory-sized attack batches (#25): one video's cost is measured, a batch is cut into calls that fit
the budget (CUDA free memory; on the CPU half the available memory or VIDATTACK_ATTACK_MEMORY), and
the videos' results do not depend on the cut."""

from __future__ import annotations

import pytest
import torch

from vidattack.attacks import get_attack
from vidattack.batch_memory import (
    ENV_LIMIT,
    bytes_per_video,
    chunks,
    memory_budget,
    memory_sized,
    parse_bytes,
    videos_that_fit,
)
from vidattack.errors import BadParameterError
from vidattack.pipeline.stages import Sampled, run_attack_batch


def _videos(n: int, t: int = 8, h: int = 40, w: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (n, t, 3, h, w), generator=g).float() / 255  # (N, T, C, H, W)


def test_one_videos_cost_grows_with_its_size_and_covers_the_video_itself(toy) -> None:
    small, big = _videos(1), _videos(1, h=80, w=96)
    model_small = toy.bind(toy.plan(small.shape[1]))
    cost_small = bytes_per_video(model_small, small)
    cost_big = bytes_per_video(toy.bind(toy.plan(big.shape[1])), big)
    assert cost_small > small.numel() * 4
    assert cost_big > 3 * cost_small  # four times the pixels


def test_the_cpu_budget_is_the_environments_limit_when_given(monkeypatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "3MB")
    assert memory_budget("cpu") == 3_000_000
    monkeypatch.delenv(ENV_LIMIT)
    assert memory_budget("cpu") > 0  # half of what the kernel says is available


@pytest.mark.parametrize(("text", "size"), [("4GB", 4 * 10**9), ("800MB", 8 * 10**8), ("2GiB", 2 * 2**30)])
def test_sizes_read_as_the_commands_write_them(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_a_size_that_is_not_one_is_refused() -> None:
    with pytest.raises(BadParameterError, match="expected a size such as 4GB"):
        parse_bytes("lots")


def test_at_least_one_video_is_attacked_and_chunks_keep_the_order() -> None:
    assert videos_that_fit(per_video=10, budget=35) == 3
    assert videos_that_fit(per_video=10, budget=5) == 1
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]


def test_a_batch_that_does_not_fit_is_attacked_in_calls_that_do(toy, monkeypatch) -> None:
    x = _videos(5)
    model = toy.bind(toy.plan(x.shape[1]))
    batch = [Sampled(model.plan, model, x[i : i + 1], None) for i in range(5)]
    per_video = bytes_per_video(model, x[:1])
    monkeypatch.setenv(ENV_LIMIT, str(int(2.5 * per_video)))
    calls: list[int] = []

    attack = get_attack("pgd-linf", steps=2)

    def run(part):
        calls.append(len(part))
        return run_attack_batch(part, attack, seed=3)

    sized = memory_sized(run)(batch)
    whole = run_attack_batch(batch, attack, seed=3)

    assert calls == [2, 2, 1]
    for a, b in zip(sized, whole, strict=True):
        assert torch.equal(a.frames, b.frames)
        assert torch.equal(a.result.success, b.result.success)
