"""`--robust-to` raises the attack's defaults to what the delivery measurements showed works (40 steps,
2 EOT draws per step), unless the user set them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidattack.cli.delivery import parse_delivery_options, robust_steps
from vidattack.cli.eval import grid_steps
from vidattack.eval import GridOptions

if TYPE_CHECKING:
    from vidattack.models.view import ModelView


def test_robust_to_raises_the_default_steps_of_an_iterative_attack_only():
    assert robust_steps("pgd-linf", None, "h264:crf=23") == "40"
    assert robust_steps("multav-linf", None, "h264:crf=18-28") == "40"
    assert robust_steps("pgd-linf", "5", "h264:crf=23") == "5"  # the user's --steps stands
    assert robust_steps("pgd-linf", None, None) is None  # no --robust-to: the paper's default
    assert robust_steps("fgsm", None, "h264:crf=23") is None  # one step by definition


def test_robust_to_averages_two_encodes_per_step_unless_told():
    _, robust = parse_delivery_options(None, "h264:crf=23")
    assert robust is not None and robust.eot == 2 and "eot=2" in str(robust)
    _, robust = parse_delivery_options("h264:crf=23", "h264:crf=23,eot=1")
    assert robust is not None and robust.eot == 1


def test_eval_robust_to_raises_the_steps_of_its_iterative_attacks_as_perturb_does(c3d: ModelView):
    # `vidattack eval -a pgd-linf,fgsm --robust-to h264:crf=23`: PGD gets 40 steps, FGSM keeps its one
    steps = grid_steps(["pgd-linf", "fgsm"], None, "h264:crf=23")
    assert steps == {"pgd-linf": "40", "fgsm": None}
    _, robust = parse_delivery_options(None, "h264:crf=23")
    configs = GridOptions(["pgd-linf", "fgsm"], steps=steps, robust_to=robust).configs(c3d)
    assert [(c.attack, c.steps, c.params.get("steps")) for c in configs] == [
        ("pgd-linf", "40", 40),
        ("fgsm", None, None),
    ]
    assert grid_steps(["pgd-linf", "fgsm"], "5", "h264:crf=23") == "5"  # the user's --steps stands
    assert grid_steps(["pgd-linf"], None, None) is None  # no --robust-to: the attacks' defaults
