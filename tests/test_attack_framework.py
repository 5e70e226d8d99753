"""The attack template, threat models and registry, on a toy model (milliseconds per test)."""

from __future__ import annotations

import math

import pytest
import torch

from vidattack.attacks import attack_names, get_attack
from vidattack.attacks.params import parse_number
from vidattack.attacks.registry import attack_class, get_attack_from_text
from vidattack.criteria import resolve_target
from vidattack.errors import BadParameterError, UnknownAttackError
from vidattack.threat import (
    FrameSpec,
    L2Ball,
    LinfBall,
    RatioLinf,
    Unbounded,
    frames_mask,
    ratio,
    round_toward,
)

# Keeps the registry-wide invariant test fast; the attack's own tests run its defaults.
FAST = {
    "vbad": {"max_queries": 300},
    "p-bad": {"max_queries": 300},
    "sr-bad": {"max_queries": 300},
    "hsja": {"max_queries": 200, "init_evals": 20},
    "sparse": {"max_iter": 5},
    "flicker": {"steps": 3},
    "frame-saliency": {"steps": 2},
}


def bound_toy(toy, x):
    return toy.bind(toy.plan(x.shape[1]))


@pytest.mark.parametrize("name", attack_names())
def test_every_attack_keeps_its_invariants(name, toy, toy_video):
    model = bound_toy(toy, toy_video)
    before = {k: v.clone() for k, v in toy.net.state_dict().items()}
    attack = get_attack(
        name,
        **{k: v for k, v in FAST.get(name, {}).items() if k in {p.name for p in attack_class(name).params()}},
    )

    result = attack(model, toy_video, seed=3)

    adv = result.adversarial
    assert adv.shape == toy_video.shape
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv, torch.round(adv * 255) / 255), "output is not on the 8-bit grid"
    bound = result.threat["bound"]
    measured = result.norms[f"threat_{result.threat['name']}"][0]
    assert measured <= bound + 1e-5 or math.isinf(bound)  # float32 measures of an exact 8-bit budget
    for k, v in toy.net.state_dict().items():
        assert torch.equal(v, before[k]), f"{name} changed the model's {k}"
    again = attack(model, toy_video, seed=3)
    assert torch.equal(again.adversarial, adv), f"{name} is not reproducible for a fixed seed"
    desc = attack_class(name).describe()
    assert desc["paper"] and desc["threat"] and desc["summary"]


def test_pgd_linf_budget_holds_exactly_after_quantization(toy, toy_video):
    result = get_attack("pgd-linf", eps=3 / 255, alpha=2.6 / 255, steps=4)(
        bound_toy(toy, toy_video), toy_video
    )
    levels = (result.adversarial - toy_video).abs().mul(255).round()
    assert int(levels.max()) <= 3
    assert result.queries == 4


def test_targeted_pgd_reaches_the_target(toy, toy_video):
    model = bound_toy(toy, toy_video)
    target = int(model(toy_video).topk(2).indices[0, 1])  # the runner-up class
    result = get_attack("pgd-linf", eps=16 / 255, alpha="auto", steps=20)(model, toy_video, target=target)
    assert result.success.item()
    assert int(result.adversarial_labels) == target


def test_alpha_auto_follows_the_adversarial_training_rule():
    attack = get_attack("pgd-linf", eps=4 / 255, alpha="auto")
    assert attack.hyperparameters()["alpha"] == pytest.approx(1 / 255)
    assert get_attack("pgd-linf", eps=8 / 255, alpha="auto").hyperparameters()["alpha"] == pytest.approx(
        1.8 / 255
    )


def test_pgd_l2_stays_in_its_ball(toy, toy_video):
    result = get_attack("pgd-l2", eps=0.5, alpha=0.3, steps=5)(bound_toy(toy, toy_video), toy_video)
    assert (result.adversarial - toy_video).norm() <= 0.5 + 1e-5


def test_parameters_are_validated_with_clear_messages():
    with pytest.raises(BadParameterError, match="eps: expected >= 0, got -1"):
        get_attack("pgd-linf", eps=-1)
    with pytest.raises(BadParameterError, match="NaN"):
        get_attack("pgd-linf", eps=float("nan"))
    with pytest.raises(BadParameterError, match=r"unknown parameter 'epz'.*did you mean eps"):
        get_attack("pgd-linf", epz=0.1)
    with pytest.raises(BadParameterError, match="steps: expected int"):
        get_attack("pgd-linf", steps=2.5)
    with pytest.raises(UnknownAttackError, match="did you mean pgd-linf"):
        get_attack("pgd-inf")


def test_text_parameters_accept_fractions_and_auto():
    attack = get_attack_from_text("pgd-linf", {"eps": "8/255", "alpha": "auto", "random_start": "yes"})
    assert attack.eps == pytest.approx(8 / 255)
    assert attack.alpha == "auto" and attack.random_start is True
    assert parse_number(" 4/255 ") == pytest.approx(4 / 255)
    with pytest.raises(BadParameterError, match="steps"):
        get_attack_from_text("pgd-linf", {"steps": "many"})


def test_rounding_toward_the_original_never_moves_further():
    x = torch.tensor([10.0, 10.0, 200.0]) / 255
    x_adv = torch.tensor([13.7, 6.2, 203.9]) / 255
    q = round_toward(x_adv, x) * 255
    assert q.tolist() == pytest.approx([13.0, 7.0, 203.0])


def test_ratio_treats_black_pixels_without_dividing_by_zero():
    x = torch.tensor([0.0, 0.0, 0.5])
    a = torch.tensor([0.0, 0.1, 0.25])
    assert ratio(a, x).tolist() == [1.0, math.inf, 2.0]


def test_ratio_bound_holds_after_quantization_on_dark_pixels():
    x = torch.arange(0, 256).float().div(255).view(1, 1, 1, 16, 16).expand(1, 2, 3, 16, 16).contiguous()
    threat = RatioLinf(eps_m=1.04)
    q = threat.quantize(x * 1.04 + 0.003, x)
    assert float(threat.measure(q, x)) <= 1.04 + 1e-6
    assert torch.all(q[x == 0] == 0)


def test_masks_compose_with_every_norm():
    x = torch.full((1, 2, 3, 4, 4), 0.5)
    mask = torch.zeros(1, 2, 1, 4, 4, dtype=torch.bool)
    mask[..., 0, 0] = True
    for threat in (LinfBall(eps=0.1, mask=mask), L2Ball(eps=0.1, mask=mask), Unbounded(mask=mask)):
        q = threat.quantize(torch.rand(x.shape), x)
        assert torch.all(q[~mask.expand_as(q)] == 0.5), threat.name


def test_frame_specs_select_video_frames():
    ids = (0, 2, 4, 6)
    assert frames_mask("all", ids, 8).tolist() == [True] * 4
    assert frames_mask("3", ids, 8).tolist() == [True, True, False, False]
    assert frames_mask("2,6", ids, 8).tolist() == [False, True, False, True]
    picked = frames_mask("random:8", ids, 8, torch.Generator().manual_seed(0))
    assert picked.all()
    with pytest.raises(BadParameterError, match="expected frame numbers"):
        frames_mask("0,9", ids, 8)
    with pytest.raises(BadParameterError, match="expected frames as"):
        frames_mask("most", ids, 8)


def test_attacks_reject_bad_videos(toy, toy_video):
    model = bound_toy(toy, toy_video)
    attack = get_attack("fgsm")
    with pytest.raises(BadParameterError, match=r"pixel values in \[0, 1\]"):
        attack(model, toy_video * 2)
    with pytest.raises(BadParameterError, match="video tensor"):
        attack(model, toy_video[0])
    with pytest.raises(BadParameterError, match="target class"):
        attack(model, toy_video, target=9)


@pytest.mark.parametrize("masked", [False, True])
def test_linf_box_clamp_is_the_projection(masked):
    from vidattack.threat import LinfBall

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 3, 5, 6), generator=g).float() / 255
    x_adv = x + (torch.rand(x.shape, generator=g) - 0.5) * 0.2
    mask = torch.rand((1, 3, 1, 5, 6), generator=g) > 0.5 if masked else None
    threat = LinfBall(eps=4 / 255, mask=mask)

    lo, hi = threat.box(x)

    assert torch.allclose(x_adv.clamp(lo, hi), threat.project(x_adv, x), atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize(
    ("eps", "alpha"), [(4 / 255, 1 / 255), (8 / 255, 2 / 255), (0.03, 0.01), (1 / 255, 1 / 255)]
)
def test_sign_steps_inside_the_ball_need_only_the_range_clamp(dtype, eps, alpha):
    # the loop's shortcut: while k sign steps cannot leave the ball, clamping to [0, 1] gives the box's bits
    threat = LinfBall(eps=eps)
    g = torch.Generator().manual_seed(1)
    x = (torch.randint(0, 256, (2, 4, 3, 8, 8), generator=g).float() / 255).to(dtype)
    x[..., 0, :] = 0.0
    x[..., 1, :] = 1.0
    lo, hi = threat.box(x)
    # every pixel drifts one way at full speed (the worst case), or wanders at random with zero steps
    drift = torch.where(torch.rand(x.shape, generator=g) < 0.5, 1.0, -1.0).to(dtype)
    wander = torch.randint(-1, 2, (4, *x.shape), generator=g).to(dtype)
    inside = threat.steps_inside(alpha, dtype)
    # not needlessly cautious: one more step may reach eps (two in float16, whose rounding is coarse)
    assert (inside + 1 + (dtype == torch.float16)) * alpha >= eps - 1e-6
    it_drift, it_wander = x.clone(), x.clone()
    for k in range(inside):
        for it, step in ((it_drift, drift), (it_wander, wander[k % 4])):
            moved = it + alpha * step
            assert torch.equal(moved.clamp(0.0, 1.0), moved.clamp(lo, hi))
            it.copy_(moved.clamp(lo, hi))


def test_pgd_takes_the_same_trajectory_with_and_without_the_range_clamp_shortcut(toy, toy_video, monkeypatch):
    model = bound_toy(toy, toy_video)
    attack = get_attack("pgd-linf", eps=8 / 255, alpha=2 / 255, steps=6)
    fast = attack(model, toy_video, seed=3)
    monkeypatch.setattr(LinfBall, "steps_inside", lambda self, size, dtype: 0)
    boxed = attack(model, toy_video, seed=3)
    assert torch.equal(fast.adversarial, boxed.adversarial)
    assert fast.history == boxed.history


# -- common options, defaults as written, frame specs, targets ----------------------------------------


def test_common_options_set_each_attacks_own_budget_step_and_iterations():
    multav = get_attack_from_text("multav-linf", {}, eps=1.1, alpha="1.02", steps="3")
    assert (multav.eps_m, multav.alpha_m, multav.steps) == (pytest.approx(1.1), pytest.approx(1.02), 3)
    pgd = get_attack_from_text("pgd-linf", {}, eps="8/255", alpha="auto")
    assert pgd.eps == pytest.approx(8 / 255) and pgd.alpha == "auto"
    with pytest.raises(BadParameterError, match="fgsm has no steps; its parameters are eps"):
        get_attack_from_text("fgsm", {}, steps=3)
    with pytest.raises(BadParameterError, match="--eps and --set eps_m"):
        get_attack_from_text("multav-l2", {"eps_m": "3"}, eps=2.0)
    with pytest.raises(BadParameterError, match="eps_m: expected >= 1"):
        get_attack_from_text("multav-linf", {}, eps=0.5)


def test_defaults_are_shown_as_written():
    texts = {p.name: p.default_text for p in attack_class("pgd-linf").params()}
    assert texts == {"eps": "4/255", "alpha": "1/255", "steps": "5", "random_start": "false"}
    roa = {p.name: p.to_dict() for p in attack_class("roa").params()}
    assert roa["alpha"]["default_text"] == "70/255"
    assert roa["frames"]["default"] == "all" and roa["frames"]["default_text"] == "all"
    assert {p.name: p.default_text for p in attack_class("frame-saliency").params()}["eps"] == "0.015"


def test_a_frames_parameter_is_parsed_once_and_reported_as_written(toy, toy_video):
    attack = get_attack("af", frames="random:3")
    assert attack.frames == FrameSpec("random", count=3)
    assert attack.hyperparameters()["frames"] == "random:3"
    result = attack(bound_toy(toy, toy_video), toy_video)
    assert len(result.info["frames"]) == 3 and result.params["frames"] == "random:3"
    assert FrameSpec.parse("[6, 2]") == FrameSpec("list", frames=(2, 6))
    with pytest.raises(BadParameterError, match="frames: expected frames as"):
        get_attack("roa", frames="most")


def test_targets_resolve_from_labels_or_indices(toy):
    assert resolve_target(toy, "class3") == 3
    assert resolve_target(toy, "CLASS2") == 2
    assert resolve_target(toy.labels, "4") == 4
    assert resolve_target(5, 0) == 0
    with pytest.raises(BadParameterError, match=r"expected a target class in \[0, 4\], got 5"):
        resolve_target(toy, 5)
    with pytest.raises(BadParameterError, match=r"expected a label of model toy or an index.*class1"):
        resolve_target(toy, "clas1")


def test_the_frame_plan_comes_from_the_model(toy, toy_video):
    from conftest import bind_plan

    result = get_attack("af", frames="10,11")(bind_plan(toy, tuple(range(4, 12)), 12), toy_video)
    assert result.info["frames"] == [10, 11]

    class Plain(torch.nn.Module):
        """A video model without a frame plan: it sees the T frames it is given as frames 0..T-1."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    plain = get_attack("af", frames="6,7")(Plain(bound_toy(toy, toy_video)), toy_video)
    assert plain.info["frames"] == [6, 7]


def test_frame_saliency_leaves_the_threat_model_it_was_given_unchanged(toy, toy_video):
    from vidattack.attacks.context import AttackContext
    from vidattack.criteria import make_criterion

    attack = get_attack("frame-saliency", steps=2)
    model = bound_toy(toy, toy_video)
    ctx = AttackContext(generator=torch.Generator(), frame_ids=tuple(range(8)), num_frames=8)
    criterion = make_criterion(model(toy_video).argmax(1), None)
    threat = attack.threat_model(model, toy_video, criterion, ctx)
    attack.run(model, toy_video, criterion, threat, ctx)
    assert threat.mask is None and ctx.restrict_to is not None


def test_refusing_stop_when_fooled_names_the_attacks_that_can_stop_early() -> None:
    able = [name for name in attack_names() if attack_class(name).stops_when_fooled]
    assert {"pgd-linf", "multav-linf", "roa"} <= set(able) and "fgsm" not in able
    with pytest.raises(BadParameterError, match="fgsm cannot stop when fooled") as info:
        attack_class("fgsm").check_stop_when_fooled(0.0)
    assert f"({', '.join(able)})" in str(info.value)
