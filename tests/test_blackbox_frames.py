"""Black-box attacks restricted to named frames (`frames=`): V-BAD's family and hsja.

Outside the named frames the attack's output, and every video it asks the model about, is exactly the
clean video; its search space (partition, NES samples, hsja's d) covers the named frames only; and the
default `all` is the attack as it was before the parameter existed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidattack.attacks.blackbox.partitions import make_partition
from vidattack.attacks.registry import get_attack
from vidattack.errors import BadParameterError

SCORE_ATTACKS = ["vbad", "p-bad", "sr-bad"]
UNTOUCHED = [1, 3, 4, 5, 6, 7]  # of the 8-frame toy video, with frames=0,2


class Watching(nn.Module):
    """Counts every video the model is asked about (the attacks' own counts aside), and those whose
    frames at `untouched` differ in any way from the clean video's."""

    def __init__(self, model: nn.Module, clean: torch.Tensor, untouched: list[int]) -> None:
        super().__init__()
        self.model, self.plan = model, model.plan
        self.clean, self.untouched = clean, untouched
        self.videos = self.touched = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.videos += x.shape[0]
        same = (x[:, self.untouched] == self.clean[:, self.untouched]).flatten(1).all(dim=1)
        self.touched += int((~same).sum())
        return self.model(x)


def bound(view, x):
    return view.bind(view.plan(x.shape[1]))


def changed_frames(adv: torch.Tensor, x: torch.Tensor) -> list[int]:
    return [t for t in range(x.shape[1]) if not torch.equal(adv[:, t], x[:, t])]


@pytest.fixture
def dark(toy_video):
    """The toy model calls this dim video class 4, and calls it class 1 once frames 0 and 2 are white."""
    return torch.round(toy_video * 0.2 * 255) / 255


@pytest.mark.parametrize("name", SCORE_ATTACKS)
def test_score_attacks_change_only_the_named_frames(name, toy, toy_video):
    model = Watching(bound(toy, toy_video), toy_video, UNTOUCHED)

    result = get_attack(name, max_queries=120, population=8, frames="0,2")(model, toy_video, seed=5)

    assert changed_frames(result.adversarial, toy_video) == [0, 2]
    assert model.touched == 0  # no NES sample spent on a masked frame
    assert result.queries == model.videos == 120
    assert result.info["frames"] == [0, 2] and result.params["frames"] == "0,2"
    assert result.threat["masked"] is True


def test_vbad_searches_only_the_named_frames(toy, toy_video):
    attack = get_attack("vbad", max_queries=20, population=8)
    everything = attack(bound(toy, toy_video), toy_video, seed=0)
    two = get_attack("vbad", max_queries=20, population=8, frames="0,2")(bound(toy, toy_video), toy_video)

    assert everything.info["coefficients"] == 8 * 64  # 8 x 8 patches on each of the 8 frames
    assert two.info["coefficients"] == 2 * 64


def test_a_partition_over_named_frames_is_exactly_zero_elsewhere():
    frames = torch.tensor([0, 2])
    for kind in ["uniform", "random", "pixel"]:
        part = make_partition(kind, (4, 3, 6, 8), 2, torch.Generator(), torch.device("cpu"), frames=frames)
        values = part.expand(torch.ones(3, part.size), (4, 3, 6, 8))

        assert part.size == (2 * 3 * 6 * 8 if kind == "pixel" else 2 * 4)
        assert values.shape[:2] == (3, 4)
        assert bool((values[:, [1, 3]] == 0).all()) and bool((values[:, [0, 2]] == 1).all())


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("on_grid", [True, False])
def test_hsja_changes_only_the_named_frames(norm, on_grid, toy, dark):
    # a float video off the 8-bit grid too (the Python API takes one): probes round the named frames only
    dark = dark if on_grid else dark + 0.3 / 255
    model = Watching(bound(toy, dark), dark, UNTOUCHED)
    white = torch.ones_like(dark)

    attack = get_attack("hsja", norm=norm, max_queries=150, init_evals=10, frames="0,2")
    result = attack(model, dark, seed=1, starting_points=white)

    assert result.success.item() and result.info["stopped"] == "budget spent"
    assert changed_frames(result.adversarial, dark) == [0, 2]
    assert model.touched == 0  # the start and every probe: clean on the other frames
    assert result.queries == model.videos == 150
    assert result.info["distortion"] == pytest.approx(result.norms[norm][0], rel=1e-4)
    assert result.info["dimension"] == 2 * 64  # d in theta and delta: 8 x 8 patches on 2 frames, not 8


def test_hsja_says_when_the_start_does_not_fool_on_the_named_frames(toy, dark):
    attack = get_attack("hsja", max_queries=50, frames="0,2")
    with pytest.raises(BadParameterError, match=r"start_video \(its named frames over the clean video's"):
        attack(bound(toy, dark), dark, seed=1, starting_points=torch.zeros_like(dark))


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("vbad", {"max_queries": 120, "population": 8}),
        ("sr-bad", {"max_queries": 120}),
        ("hsja", {"max_queries": 120, "init_evals": 10}),
        ("hsja", {"max_queries": 120, "init_evals": 10, "norm": "linf"}),
    ],
)
def test_all_frames_is_the_attack_without_the_parameter(name, settings, toy, toy_video, dark):
    # same seed, same trajectory, same queries: absent, `all` and every frame listed are one attack
    x = dark if name == "hsja" else toy_video
    runs = [
        get_attack(name, **settings, **extra)(bound(toy, x), x, seed=3)
        for extra in ({}, {"frames": "all"}, {"frames": "0,1,2,3,4,5,6,7"})
    ]
    for other in runs[1:]:
        assert torch.equal(other.adversarial, runs[0].adversarial)
        assert other.queries == runs[0].queries and other.history == runs[0].history
    assert runs[0].threat["masked"] is False and "frames" not in runs[0].info
    # nor is `all` in the parameters: the job keys of runs made before `frames` existed stay as they were
    assert "frames" not in runs[0].params and "frames" not in runs[1].params
    assert runs[0].info.get("coefficients", runs[0].info.get("dimension")) == 8 * 64


@pytest.mark.parametrize("name", ["vbad", "hsja"])
def test_frames_beyond_the_video_fail_with_one_clear_line_before_any_query(name, toy, toy_video):
    model = Watching(bound(toy, toy_video), toy_video, UNTOUCHED)
    with pytest.raises(BadParameterError, match=r"expected frame numbers in \[0, 7\], got \[9\]"):
        get_attack(name, max_queries=20, frames="0,9")(model, toy_video)
    with pytest.raises(BadParameterError, match=r"expected random:K with 0 < K <= 8, got random:9"):
        get_attack(name, max_queries=20, frames="random:9")(model, toy_video)
    assert model.videos == 0  # not even the clean-label query was spent
    with pytest.raises(BadParameterError, match="expected frames as all, K, random:K"):
        get_attack(name, frames="zero")


def test_random_frames_are_drawn_with_the_seed(toy, toy_video):
    attack = get_attack("sr-bad", max_queries=30, frames="random:2")
    a, b = (attack(bound(toy, toy_video), toy_video, seed=4) for _ in range(2))

    assert len(a.info["frames"]) == 2 and a.info["frames"] == b.info["frames"]
    assert changed_frames(a.adversarial, toy_video) == a.info["frames"]
    assert torch.equal(a.adversarial, b.adversarial)


@pytest.mark.slow  # ~4 s: about 2,000 targeted queries to bring eps down to 0.05
def test_targeted_vbad_starts_from_the_target_video_on_the_named_frames_only(toy_video):
    # the tilted toy calls toy_video class 0 and its darkened copy class 4 (see test_vbad.py)
    from test_vbad import dark_start, tilted_toy

    model = Watching(bound(tilted_toy(), toy_video), toy_video, [0, 1])
    attack = get_attack("vbad", max_queries=2500, tentative="static", frames="2,3,4,5,6,7")

    result = attack(model, toy_video, target=4, seed=0, starting_points=dark_start(toy_video))

    assert result.success.item() and result.queries == model.videos <= 2500
    assert changed_frames(result.adversarial, toy_video) == [2, 3, 4, 5, 6, 7] and model.touched == 0
    with pytest.raises(BadParameterError, match=r"\(its named frames over the clean video's others\)"):
        get_attack("vbad", frames="0,2")(model, toy_video, target=4, starting_points=dark_start(toy_video))
