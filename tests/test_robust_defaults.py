"""`--robust-to` raises the attack's defaults to what the delivery measurements showed works (40 steps,
2 EOT draws per step), unless the user set them."""

from __future__ import annotations

from vidattack.cli.delivery import parse_delivery_options, robust_steps


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
