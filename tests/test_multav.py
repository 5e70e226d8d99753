"""MultAV (multiplicative attacks): the ratio bound, black pixels, signal dependency, strength, files."""

from __future__ import annotations

import math

import pytest
import torch

from vidattack.attacks import AttackContext, get_attack
from vidattack.attacks.loops import ascend
from vidattack.criteria import make_criterion
from vidattack.errors import BadParameterError
from vidattack.models.view import sampled_frames
from vidattack.threat import RatioL2, RatioLinf, log_ratio

MULTAV = ["multav-linf", "multav-l2", "multav-roa", "multav-af", "multav-spa"]


def bind(view, x):
    return view.bind(view.plan(x.shape[1]))


def levels(x):
    return torch.round(x * 255).double()


def dark_video(seed: int = 0) -> torch.Tensor:
    """(1, 8, 3, 40, 48) on the 8-bit grid, mostly very dark (levels 0..12) where rounding is hardest."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 13, (1, 8, 3, 40, 48), generator=g).float()
    x[..., 20:, :] = torch.randint(0, 256, (1, 8, 3, 20, 48), generator=g).float()
    return x / 255


def clip_input(view, path):
    from vidattack.video import load_video

    video = load_video(path)
    plan = view.plan(video.num_frames)
    return view.bind(plan), sampled_frames(video.frames, plan), plan


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


# -- the multiplicative step and the ratio bound ---------------------------------------------------


def test_one_step_multiplies_every_pixel_by_alpha_or_its_inverse(toy, toy_video):
    model = bind(toy, toy_video)
    ctx = AttackContext(generator=torch.Generator(), frame_ids=tuple(range(8)), num_frames=8)
    crit = make_criterion(model(toy_video).argmax(1), None)

    x_adv = ascend(model, toy_video, crit, RatioLinf(eps_m=2.0), ctx, start=toy_video, size=1.5, steps=1)

    moved = (toy_video > 0) & (toy_video * 1.5 <= 1)
    r = x_adv[moved] / toy_video[moved]
    assert bool((torch.isclose(r, torch.tensor(1.5)) | torch.isclose(r, torch.tensor(1 / 1.5))).all())
    assert bool((x_adv[toy_video == 0] == 0).all())


def test_the_ratio_bound_bites_from_the_fourth_step_with_the_paper_settings(toy, toy_video):
    model = bind(toy, toy_video)
    crit = make_criterion(model(toy_video).argmax(1), None)
    worst = []
    for steps in (3, 5):
        ctx = AttackContext(generator=torch.Generator(), frame_ids=tuple(range(8)), num_frames=8)
        x_adv = ascend(
            model, toy_video, crit, RatioLinf(eps_m=1.04), ctx, start=toy_video, size=1.01, steps=steps
        )
        worst.append(float(log_ratio(x_adv, toy_video).abs().max()))
    assert worst[0] == pytest.approx(3 * math.log(1.01), rel=1e-4)
    assert worst[1] == pytest.approx(math.log(1.04), rel=1e-4)


@pytest.mark.parametrize("eps_m,alpha_m", [(1.04, 1.01), (1.1, 1.08), (1.5, 1.7)])
def test_multav_linf_ratio_bound_holds_exactly_on_dark_pixels_after_quantization(toy, eps_m, alpha_m):
    x = dark_video()
    result = get_attack("multav-linf", eps_m=eps_m, alpha_m=alpha_m)(bind(toy, x), x)

    a, o = levels(result.adversarial), levels(x)
    # in integer levels: o / eps_m <= a <= o * eps_m, exactly (black stays black)
    assert bool((a <= o * eps_m + 1e-9).all()) and bool((a * eps_m >= o - 1e-9).all())
    assert result.norms["ratio_max"][0] <= eps_m + 1e-6
    assert bool((a != o).any())


@pytest.mark.parametrize("name", MULTAV)
def test_black_pixels_stay_black(name, toy):
    x = dark_video(1)
    x[:, :, :, :12, :12] = 0  # a black patch where every region (rectangle, border, pixels) may fall
    x[:, :, 1, 30:, 30:] = 0  # and a black channel elsewhere
    params = {"height": 20, "width": 20} if name == "multav-roa" else {}

    result = get_attack(name, **params)(bind(toy, x), x)

    assert bool((result.adversarial[x == 0] == 0).all())
    assert math.isfinite(result.norms["ratio_max"][0])


def test_multiplicative_perturbation_grows_with_intensity_unlike_pgd(toy, toy_video):
    model = bind(toy, toy_video)
    mult = get_attack("multav-linf")(model, toy_video).adversarial
    add = get_attack("pgd-linf")(model, toy_video).adversarial

    assert correlation((mult - toy_video).abs(), toy_video) > 0.8
    assert abs(correlation((add - toy_video).abs(), toy_video)) < 0.1


def test_parameters_are_validated():
    with pytest.raises(BadParameterError, match="eps_m: expected >= 1"):
        get_attack("multav-linf", eps_m=0.9)
    with pytest.raises(BadParameterError, match="alpha_m: expected >= 1"):
        get_attack("multav-l2", alpha_m=0.5)
    assert get_attack("multav-linf").hyperparameters() == {"eps_m": 1.04, "alpha_m": 1.01, "steps": 5}
    assert get_attack("multav-l2").hyperparameters() == {"eps_m": 160.0, "alpha_m": 3.55, "steps": 5}


# -- the L2 ratio bound ------------------------------------------------------------------------------


def test_ratio_l2_measures_the_log_ratio_symmetrically():
    x = torch.full((1, 1, 3, 2, 2), 0.4)
    threat = RatioL2(eps_m=1.0)
    assert float(threat.measure(x, x)[0]) == 0.0
    up, down = threat.measure(x * 1.5, x), threat.measure(x / 1.5, x)
    assert float(up[0]) == pytest.approx(math.log(1.5) * math.sqrt(12), rel=1e-5)
    assert float(up[0]) == pytest.approx(float(down[0]), rel=1e-5)
    black = torch.zeros_like(x)
    assert float(threat.measure(black, black)[0]) == 0.0
    assert math.isinf(float(threat.measure(x, black)[0]))  # a black pixel may not light up
    assert math.isinf(float(threat.measure(black, x)[0]))  # nor a lit one turn black


def test_ratio_l2_projection_and_quantization_keep_the_bound():
    g = torch.Generator().manual_seed(2)
    x = dark_video(3)
    x[..., :3, :3] = 0
    far = torch.rand(x.shape, generator=g)  # includes 0 -> non-zero, non-zero -> ~0, large ratios
    threat = RatioL2(eps_m=3.0)

    projected = threat.project(far, x)
    quantized = threat.quantize(far, x)

    assert float(threat.measure(projected, x)[0]) <= 3.0 * (1 + 1e-5)
    assert float(threat.measure(quantized, x)[0]) <= 3.0 * (1 + 1e-6)
    assert torch.equal(quantized, torch.round(quantized * 255) / 255)
    assert bool((quantized[x == 0] == 0).all())
    inside = x * 1.01
    assert torch.allclose(threat.project(inside, x), inside.clamp(0, 1))


def test_multav_l2_keeps_an_active_bound_and_reports_its_reading(toy, toy_video):
    result = get_attack("multav-l2", eps_m=0.5)(bind(toy, toy_video), toy_video)
    assert result.norms["threat_ratio_l2"][0] <= 0.5 * (1 + 1e-6)
    assert result.threat["name"] == "ratio_l2"
    assert "ln(x_adv / x)" in str(result.threat["measure"])


# -- against the bundled model -----------------------------------------------------------------------


# multav-roa (the slowest) is slow; the other four keep the bundled model fooled in the fast subset
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "multav-roa" else n for n in MULTAV]
)
def test_fools_the_bundled_c3d_at_the_paper_defaults(name, c3d, example_clip):
    model, x, _ = clip_input(c3d, example_clip)
    result = get_attack(name)(model, x)
    assert bool(result.success[0]), f"{name} did not fool tiny-c3d on {example_clip.name}"


def test_signal_dependency_on_a_real_clip(c3d, example_clip):
    model, x, _ = clip_input(c3d, example_clip)
    mult = get_attack("multav-linf")(model, x).adversarial
    add = get_attack("pgd-linf")(model, x).adversarial
    # quantization and sign flips blur it, but brighter pixels still move clearly more
    assert correlation((mult - x).abs(), x) > 0.3
    assert correlation((add - x).abs(), x) < 0.05


def test_targeted_multav_linf_reaches_its_target(c3d, example_clip):
    model, x, _ = clip_input(c3d, example_clip)
    clean = int(model(x).argmax(1)[0])
    target = (clean + 1) % c3d.num_classes
    result = get_attack("multav-linf")(model, x, target=target)
    assert bool(result.success[0])
    assert int(result.adversarial_labels[0]) == target
    assert result.norms["ratio_max"][0] <= 1.04 + 1e-6


# -- on written files --------------------------------------------------------------------------------


def test_the_written_file_keeps_the_ratio_bound_and_black_pixels(c3d, example_clip, tmp_path):
    from conftest import write_clip

    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    frames = load_video(example_clip).frames.clone()
    frames[:, :16, :16] = 0  # a black corner that must survive a multiplicative attack
    frames[:, 40:60, 40:60] = torch.randint(
        1, 6, (frames.shape[0], 20, 20, 3), dtype=torch.uint8
    )  # very dark
    src = write_clip(tmp_path / "dark_corner.mp4", frames)

    report = perturb_file(src, "multav-linf", model=c3d, out_dir=tmp_path / "out", heatmaps=False)

    written = load_video(report["outputs"]["adversarial"]).frames
    a, o = written.double(), frames.double()
    assert bool((a <= o * 1.04 + 1e-9).all()) and bool((a * 1.04 >= o - 1e-9).all())
    assert bool((written[:, :16, :16] == 0).all())
    assert report["perturbation"]["ratio_max"] <= 1.04 + 1e-6  # measured in float32
    assert report["attack"]["threat"]["name"] == "ratio_linf"
    assert report["success_after_encode"] == report["success"]
