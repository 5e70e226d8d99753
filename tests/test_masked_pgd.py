"""Masked PGD and frame-border PGD (the adversarial-training paper's region attacks): where they act,
what they leave alone, their budget on the 8-bit grid and in the written file, and their strength."""

from __future__ import annotations

import pytest
import torch

from vidattack.attacks import get_attack
from vidattack.attacks.loops import auto_alpha_linf
from vidattack.attacks.region import patch_size
from vidattack.errors import BadParameterError
from vidattack.models.view import ModelView, sampled_frames
from vidattack.threat import Border, border_width_for_ratio

FAST = {"steps": 5, "alpha": 0.1}


def bind(view: ModelView, x: torch.Tensor):
    return view.bind(view.plan(x.shape[1]))


def test_patch_and_border_sizes_follow_the_area_ratio() -> None:
    assert patch_size(112, 112, 0.1) == (35, 35)  # floor(112 * sqrt(0.1)) = floor(35.4)
    assert patch_size(112, 112, 0.25) == (56, 56)
    assert patch_size(240, 320, 0.1) == (75, 101)
    assert border_width_for_ratio(112, 112, 0.1) == 2  # smaller root 2.87, floored


def test_masked_pgd_changes_only_the_patch_at_the_given_corner(toy, toy_video) -> None:
    model = bind(toy, toy_video)
    result = get_attack("masked-pgd", top=3, left=7, **FAST)(model, toy_video)
    region = result.info["region"]
    assert region == {"kind": "rectangle", "top": 3, "left": 7, "height": 12, "width": 15}  # 40 x 48 frame
    inside = torch.zeros_like(toy_video, dtype=torch.bool)
    inside[..., 3:15, 7:22] = True
    changed = result.adversarial != toy_video
    assert changed.any()
    assert not (changed & ~inside).any()
    # the same patch on every frame: each frame changes somewhere inside it
    assert changed.any(dim=(2, 3, 4)).all()


def test_masked_pgd_draws_its_corner_with_the_seed(toy, toy_video) -> None:
    model = bind(toy, toy_video)
    attack = get_attack("masked-pgd", steps=1)
    regions = [attack(model, toy_video, seed=s).info["region"] for s in (0, 0, 1, 2, 3)]
    assert regions[0] == regions[1]
    assert len({(r["top"], r["left"]) for r in regions}) > 1
    for r in regions:
        assert 0 <= r["top"] <= 40 - r["height"] and 0 <= r["left"] <= 48 - r["width"]


def test_frame_border_changes_only_the_border(toy, toy_video) -> None:
    model = bind(toy, toy_video)
    result = get_attack("frame-border", **FAST)(model, toy_video)
    width = result.info["region"]["width"]
    assert width == border_width_for_ratio(40, 48, 0.1)
    border = Border(width).mask(toy_video.shape).expand_as(toy_video)
    changed = result.adversarial != toy_video
    assert changed.any()
    assert not (changed & ~border).any()


def test_frame_border_width_overrides_the_ratio(toy, toy_video) -> None:
    result = get_attack("frame-border", width=5, steps=1)(bind(toy, toy_video), toy_video)
    assert result.info["region"]["width"] == 5
    assert not (result.adversarial != toy_video)[..., 5:-5, 5:-5].any()


@pytest.mark.parametrize("name", ["masked-pgd", "frame-border"])
def test_budget_holds_on_the_8_bit_grid(name, toy, toy_video) -> None:
    x = toy_video
    result = get_attack(name, eps=4 / 255, alpha=1 / 255, steps=6)(bind(toy, x), x)
    adv = result.adversarial
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    levels = adv * 255
    assert torch.equal(levels, levels.round())
    assert int((levels.round() - (x * 255).round()).abs().max()) == 4


@pytest.mark.parametrize("name", ["masked-pgd", "frame-border"])
def test_model_parameters_are_left_unchanged(name, toy, toy_video) -> None:
    before = {k: v.clone() for k, v in toy.net.state_dict().items()}
    get_attack(name, **FAST)(bind(toy, toy_video), toy_video)
    for k, v in toy.net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in toy.net.parameters())


@pytest.mark.parametrize("name", ["masked-pgd", "frame-border"])
def test_targeted_attack_reaches_the_target(name, toy, toy_video) -> None:
    model = bind(toy, toy_video)
    with torch.no_grad():
        ranked = model(toy_video)[0].argsort(descending=True)
    target = int(ranked[1])
    result = get_attack(name, ratio=0.3, steps=40, alpha=0.05)(model, toy_video, target=target)
    assert int(result.adversarial_labels[0]) == target
    assert bool(result.success[0])


def test_alpha_auto_uses_the_papers_step_rule() -> None:
    attack = get_attack("masked-pgd", alpha="auto")
    assert attack.hyperparameters()["alpha"] == pytest.approx(auto_alpha_linf(1.0))
    assert get_attack("frame-border").hyperparameters()["alpha"] == pytest.approx(0.02)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("masked-pgd", {"top": 35}, "inside the 40 x 48 frame"),
        ("masked-pgd", {"ratio": 0.0}, "ratio"),
        ("frame-border", {"ratio": 1.0}, "ratio"),
        ("frame-border", {"width": 30}, "border width"),
    ],
)
def test_bad_regions_are_clear_errors(name, params, message, toy, toy_video) -> None:
    with pytest.raises(BadParameterError, match=message):
        get_attack(name, steps=1, **params)(bind(toy, toy_video), toy_video)


@pytest.mark.parametrize("name", ["masked-pgd", "frame-border"])
def test_written_file_changes_only_inside_the_region(name, toy, tmp_path) -> None:
    from conftest import write_clip

    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    src = write_clip(tmp_path / "noise.mp4", frames)
    params = {"top": 20, "left": 30} if name == "masked-pgd" else {}
    report = perturb_file(
        src,
        get_attack(name, **params, **FAST),
        model=toy,
        out_dir=tmp_path / "out",
        device="cpu",
        heatmaps=False,
    )
    written = load_video(tmp_path / "out" / "noise.adv.mp4").frames  # (T, H, W, 3)
    changed = (written != frames).any(dim=3)  # (T, H, W)
    region = report["attack"]["info"]["region"]
    allowed = torch.zeros(40, 48, dtype=torch.bool)
    if name == "masked-pgd":
        assert (region["top"], region["left"]) == (20, 30)
        allowed[20 : 20 + region["height"], 30 : 30 + region["width"]] = True
    else:
        allowed = Border(region["width"]).mask((1, 1, 3, 40, 48))[0, 0, 0]
    assert changed.any()
    assert not (changed & ~allowed).any()


# masked-pgd is slow; frame-border, on the same masked loop, keeps the bundled model fooled in the fast subset
@pytest.mark.parametrize("name", [pytest.param("masked-pgd", marks=pytest.mark.slow), "frame-border"])
def test_fools_the_bundled_c3d_at_its_defaults(name, c3d, example_clip) -> None:
    from vidattack.video import load_video

    frames = load_video(example_clip).frames
    plan = c3d.plan(frames.shape[0])
    x = sampled_frames(frames, plan)
    result = get_attack(name)(c3d.bind(plan), x)
    assert bool(result.success[0])
