"""Region attacks, additive (roa, af, spa) and multiplicative (multav-roa, multav-af, multav-spa):
where they act, how they choose it, what they leave alone, and that they fool the bundled model."""

from __future__ import annotations

import pytest
import torch
from conftest import bind_plan
from torch import nn

from vidattack.attacks import get_attack
from vidattack.errors import BadParameterError
from vidattack.models.view import ModelView, Preprocess, sampled_frames

RECTANGLE = ["roa", "multav-roa"]
BORDER = ["af", "multav-af"]
PIXELS = ["spa", "multav-spa"]
REGION = RECTANGLE + BORDER + PIXELS
SMALL = {"height": 12, "width": 12}  # a rectangle that fits the 40 x 48 toy frames with room to move


def bind(view, x):
    return view.bind(view.plan(x.shape[1]))


def changed_pixels(adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(N, T, H, W) bool: pixels where any channel changed."""
    return (adv != x).any(dim=2)


class ProbeNet(nn.Module):
    """Class 1 wins when the mean of some watched pixels rises above 0.3; input (B, 3, T, H, W).

    `weights` (T, H, W) says which pixels are watched on each frame and how much they count, so the
    loss is sensitive there and nowhere else: a region search has a known right answer.
    """

    w: torch.Tensor

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", weights / weights.sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x.mean(dim=1) * self.w).sum(dim=(1, 2, 3))  # (B,)
        return torch.stack([torch.zeros_like(s), 20 * (s - 0.3)], dim=1)


def probe_view(weights: torch.Tensor) -> ModelView:
    return ModelView(ProbeNet(weights), Preprocess(clip_len=weights.shape[0]), ["calm", "alarm"], "probe")


def boxes(t: int, places: list[tuple[int, int]], size: int = 10, h: int = 40, w: int = 48) -> torch.Tensor:
    """Watch a `size` box per frame at `places[f]` (top, left), or the same box on every frame."""
    weights = torch.zeros(t, h, w)
    for f in range(t):
        top, left = places[f % len(places)]
        weights[f, top : top + size, left : left + size] = 1
    return weights


def gray_video(t: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.round((0.2 + 0.02 * torch.randn(1, t, 3, 40, 48, generator=g)) * 255) / 255


def rectangle_of(info: dict, frame_pos: int) -> tuple[int, int, int, int]:
    region = info["region"]
    return region["top"][0][frame_pos], region["left"][0][frame_pos], region["height"], region["width"]


# -- where region attacks act ------------------------------------------------------------------------


@pytest.mark.parametrize("name", RECTANGLE)
@pytest.mark.parametrize("search", ["exhaustive", "gradient", "random"])
@pytest.mark.parametrize("placement", ["shared", "per-frame"])
def test_rectangle_attacks_change_only_their_reported_rectangle(name, search, placement, toy, toy_video):
    result = get_attack(name, search=search, placement=placement, **SMALL)(bind(toy, toy_video), toy_video)

    info = result.info
    assert info["region"]["kind"] == "rectangle" and info["region"]["search"] == search
    changed = changed_pixels(result.adversarial, toy_video)[0]
    for f in range(toy_video.shape[1]):
        top, left, h, w = rectangle_of(info, f)
        inside = torch.zeros_like(changed[f])
        inside[top : top + h, left : left + w] = True
        assert not bool((changed[f] & ~inside).any()), f"frame {f} changed outside its rectangle"
    if placement == "shared":
        assert len(set(info["region"]["top"][0])) == 1 and len(set(info["region"]["left"][0])) == 1


@pytest.mark.parametrize("name", BORDER)
def test_border_attacks_leave_the_inside_of_every_frame_alone(name, toy, toy_video):
    result = get_attack(name, width=5)(bind(toy, toy_video), toy_video)

    changed = changed_pixels(result.adversarial, toy_video)
    assert not bool(changed[..., 5:-5, 5:-5].any())
    assert bool(changed.any())
    assert result.info["region"] == {"kind": "border", "width": 5}


@pytest.mark.parametrize("name", PIXELS)
@pytest.mark.parametrize("selection", ["gradient", "random"])
def test_pixel_attacks_change_at_most_their_pixels_per_frame(name, selection, toy, toy_video):
    result = get_attack(name, pixels=40, selection=selection)(bind(toy, toy_video), toy_video)

    per_frame = changed_pixels(result.adversarial, toy_video).sum(dim=(2, 3))
    assert int(per_frame.max()) <= 40
    assert int(per_frame.min()) > 0
    assert result.info["region"] == {"kind": "pixels", "pixels_per_frame": 40, "selection": selection}


@pytest.mark.parametrize("name", REGION)
def test_frames_outside_the_selection_are_unchanged(name, toy, toy_video):
    params = {**SMALL, "frames": "1,4"} if name in RECTANGLE else {"frames": "1,4"}

    result = get_attack(name, **params)(bind(toy, toy_video), toy_video)

    changed = changed_pixels(result.adversarial, toy_video)[0].any(dim=(1, 2))
    assert changed.nonzero().flatten().tolist() == [1, 4]
    assert result.info["frames"] == [1, 4]


def test_frames_are_video_frame_numbers(toy):
    x = gray_video(4)
    result = get_attack("af", frames="10")(bind_plan(toy, (8, 9, 10, 11), 12), x)
    assert changed_pixels(result.adversarial, x)[0].any(dim=(1, 2)).tolist() == [True, True, False, False]
    assert result.info["frames"] == [8, 9]


def test_frames_the_model_never_sees_are_a_clear_error(toy):
    x = gray_video(4)
    with pytest.raises(BadParameterError, match="expected frames the model samples"):
        get_attack("spa", frames="1,3")(bind_plan(toy, (0, 2, 4, 6), 8), x)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("roa", {"height": 41}, "expected a rectangle that fits in the 40 x 48 frames, got 41 x 30"),
        ("multav-roa", {}, "expected a rectangle that fits in the 40 x 48 frames, got 30 x 30"),
        ("af", {"width": 21}, r"expected a border width in \[1, 20\] for a 40 x 48 frame, got 21"),
        ("multav-af", {"width": 25}, "got 25"),
        ("spa", {"pixels": 1921}, "expected at most 1920 pixels per 40 x 48 frame, got 1921"),
        ("multav-spa", {"pixels": 5000}, "got 5000"),
    ],
)
def test_regions_larger_than_the_frame_are_clear_errors(name, params, message, toy, toy_video):
    x = toy_video
    if name == "multav-roa":
        x = x[..., :40, :29]  # 40 x 29 frames cannot hold the default 30 x 30 rectangle
        message = "expected a rectangle that fits in the 40 x 29 frames, got 30 x 30"
    with pytest.raises(BadParameterError, match=message):
        get_attack(name, **params)(bind(toy, x), x)


# -- how regions are chosen --------------------------------------------------------------------------


@pytest.mark.parametrize("name", RECTANGLE)
@pytest.mark.parametrize("search", ["exhaustive", "gradient"])
def test_rectangle_search_finds_the_sensitive_spot(name, search):
    x = gray_video()
    view = probe_view(boxes(8, [(20, 30)]))

    result = get_attack(name, search=search, stride=2, top_k=3, steps=1, **SMALL)(bind(view, x), x)

    top, left, h, w = rectangle_of(result.info, 0)
    assert top <= 20 and top + h >= 30 and left <= 30 and left + w >= 40, (top, left)
    assert bool(result.success[0])


@pytest.mark.parametrize("search", ["exhaustive", "gradient"])
def test_per_frame_search_follows_a_moving_spot(search):
    x = gray_video()
    places = [(2 + 4 * (f % 7), 2 + 4 * f) for f in range(8)]  # on the stride-4 grid, +2
    view = probe_view(boxes(8, places))

    roa = get_attack("roa", search=search, placement="per-frame", stride=4, top_k=3, **SMALL)
    result = roa(bind(view, x), x)

    for f, (bt, bl) in enumerate(places):
        top, left, h, w = rectangle_of(result.info, f)
        assert top <= bt and top + h >= bt + 10 and left <= bl and left + w >= bl + 10, (f, top, left)


def test_exhaustive_search_costs_one_query_per_grid_position(toy, toy_video):
    result = get_attack("roa", stride=10, **SMALL)(bind(toy, toy_video), toy_video)
    # tops 0, 10, 20, 28 and lefts 0, 10, 20, 30, 36 (the last start keeps the far edge reachable)
    assert result.info["region"]["candidates_evaluated"] == 4 * 5
    assert result.queries == 20 + 5


@pytest.mark.parametrize("name", PIXELS)
def test_pixel_selection_by_gradient_picks_the_pixels_that_matter(name):
    x = gray_video()
    g = torch.Generator().manual_seed(0)
    weights = torch.zeros(8, 40 * 48)
    watched = torch.stack([torch.randperm(40 * 48, generator=g)[:6] for _ in range(8)])  # (T, 6)
    weights.scatter_(1, watched, 1.0)
    view = probe_view(weights.view(8, 40, 48))

    result = get_attack(name, pixels=6)(bind(view, x), x)

    changed = changed_pixels(result.adversarial, x)[0].reshape(8, -1)
    for f in range(8):
        assert set(changed[f].nonzero().flatten().tolist()) == set(watched[f].tolist())


def test_random_choices_follow_the_seed(toy, toy_video):
    model = bind(toy, toy_video)
    spa = get_attack("spa", selection="random", pixels=20)
    a, b, c = (spa(model, toy_video, seed=s).adversarial for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    roa = get_attack("roa", search="random", placement="per-frame", **SMALL)
    assert roa(model, toy_video, seed=4).info == roa(model, toy_video, seed=4).info


def test_roa_starts_gray_and_spa_can_start_black(toy, toy_video):
    model = bind(toy, toy_video)
    roa = get_attack("roa", steps=0, **SMALL)(model, toy_video)
    top, left, h, w = rectangle_of(roa.info, 0)
    patch = roa.adversarial[0, 0, :, top : top + h, left : left + w]
    assert torch.equal(patch, torch.full_like(patch, 128 / 255))

    spa = get_attack("spa", steps=0, init="black", pixels=30)(model, toy_video)
    moved = changed_pixels(spa.adversarial, toy_video)
    assert bool((spa.adversarial.amax(dim=2)[moved] == 0).all())


def test_multiplicative_regions_stay_in_their_ratio_bound(toy, toy_video):
    model = bind(toy, toy_video)
    for name, eps_m in (("multav-roa", 1.7), ("multav-af", 3.55), ("multav-spa", 3.55)):
        result = get_attack(name, **(SMALL if name == "multav-roa" else {}))(model, toy_video)
        a, o = torch.round(result.adversarial * 255).double(), torch.round(toy_video * 255).double()
        assert bool((a <= o * eps_m + 1e-9).all()) and bool((a * eps_m >= o - 1e-9).all()), name


# -- against the bundled model and on files ----------------------------------------------------------


def clip_input(view, path):
    from vidattack.video import load_video

    video = load_video(path)
    plan = view.plan(video.num_frames)
    return view.bind(plan), sampled_frames(video.frames, plan), plan


# roa (the slowest) is slow; af and spa keep the bundled model fooled in the fast subset
@pytest.mark.parametrize("name", [pytest.param("roa", marks=pytest.mark.slow), "af", "spa"])
def test_additive_region_attacks_fool_the_bundled_c3d_at_the_paper_defaults(name, c3d, example_clip):
    model, x, _ = clip_input(c3d, example_clip)
    result = get_attack(name)(model, x)
    assert bool(result.success[0]), f"{name} did not fool tiny-c3d on {example_clip.name}"


def test_the_written_file_changes_only_the_reported_rectangle(c3d, example_clip, tmp_path):
    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    report = perturb_file(example_clip, "multav-roa", model=c3d, out_dir=tmp_path, heatmaps=False)

    clean = load_video(example_clip).frames
    written = load_video(report["outputs"]["adversarial"]).frames
    changed = (written != clean).any(dim=-1)  # (T, H, W)
    region = report["attack"]["info"]["region"]
    assert report["attack"]["info"]["frames"] == list(range(clean.shape[0]))
    for f in range(clean.shape[0]):
        top, left = region["top"][0][f], region["left"][0][f]
        inside = torch.zeros_like(changed[f])
        inside[top : top + 30, left : left + 30] = True
        assert not bool((changed[f] & ~inside).any())
    a, o = written.double(), clean.double()
    assert bool((a <= o * 1.7 + 1e-9).all()) and bool((a * 1.7 >= o - 1e-9).all())
    assert report["success_after_encode"]


def test_the_written_file_has_at_most_100_adversarial_pixels_per_frame(c3d, example_clip, tmp_path):
    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    report = perturb_file(example_clip, "spa", model=c3d, out_dir=tmp_path, heatmaps=False)

    clean = load_video(example_clip).frames
    written = load_video(report["outputs"]["adversarial"]).frames
    assert int((written != clean).any(dim=-1).sum(dim=(1, 2)).max()) <= 100
    assert report["attack"]["info"]["region"]["pixels_per_frame"] == 100
