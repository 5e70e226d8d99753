"""The attack's curve (`S.curve.png`): axes that name the objective and its class, the step where the
label flipped, and V-BAD's two probabilities that coincide while the label is top-1."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from vidattack.attacks import get_attack
from vidattack.pipeline.render.plots import curve_names, flip_point, history_chart


class Brightness(nn.Module):
    """Two classes by mean brightness: class 1 above 0.5. A video at 0.45 everywhere needs 13 Linf
    steps of 1/255 (each raises the mean by 1/255) before it crosses: the flip step is known."""

    def forward(self, x: Tensor) -> Tensor:
        m = x.mean(dim=(1, 2, 3, 4))  # (N,)
        return torch.stack([(0.5 - m) * 50, (m - 0.5) * 50], dim=1).log_softmax(dim=1)


def test_pgd_records_where_the_label_flipped_and_the_curve_marks_it(tmp_path):
    x = torch.full((1, 4, 3, 8, 8), 0.45)
    attack = get_attack("pgd-linf", eps=20 / 255, alpha=1 / 255, steps=16)
    result = attack(Brightness(), x, labels=torch.tensor([0]))
    fooled = [row["fooled"] for row in result.history]
    # a record is the iterate after `step` steps: 0.45 + 13/255 > 0.5 is the first that fools
    assert fooled == [0.0] * 13 + [1.0] * 3
    assert flip_point(result.history) == 13
    assert history_chart(tmp_path / "c.png", result.history)


def test_no_flip_is_marked_without_a_verdict_or_when_fooled_from_the_start():
    assert flip_point([{"step": 0, "objective": 1.0}, {"step": 1, "objective": 2.0}]) is None
    never = [{"queries": q, "loss": -q, "fooled": 0.0} for q in (10, 20, 30)]
    assert flip_point(never, "queries") is None
    start = [{"queries": q, "loss": -q, "fooled": 1.0} for q in (10, 20, 30)]  # targeted V-BAD's start
    assert flip_point(start, "queries") is None
    assert flip_point([*never, {"queries": 40, "loss": -40, "fooled": 1.0}], "queries") == 40


@pytest.mark.parametrize(
    ("attack", "target", "objective", "loss"),
    [
        ("pgd-linf", None, "-log p(move_left)", None),
        ("pgd-linf", "zoom_in", "log p(zoom_in)", None),
        ("vbad", None, "-log p(move_left)", "log p(move_left)"),  # V-BAD descends log p(label)
        ("vbad", "zoom_in", "log p(zoom_in)", "-log p(zoom_in)"),
    ],
)
def test_the_y_axes_name_the_objective_and_its_class(attack, target, objective, loss):
    names = curve_names(attack, "move_left", target)
    assert names["objective"] == objective
    assert names.get("loss") == loss
    assert names["label_prob"] == f"p({target or 'move_left'})"


def test_vbad_probabilities_share_one_panel(tmp_path):
    rows = [
        {"queries": 50 * i, "loss": -0.1 * i, "top1_prob": 0.9 - 0.1 * i, "label_prob": 0.9 - 0.1 * i}
        for i in range(5)
    ]
    assert history_chart(tmp_path / "both.png", rows, x="queries")
    apart = [{k: v for k, v in r.items() if k != "label_prob"} for r in rows]
    assert history_chart(tmp_path / "one.png", apart, x="queries")
    both, one = Image.open(tmp_path / "both.png"), Image.open(tmp_path / "one.png")
    # the same two panels (loss, probability): label_prob adds a caption line, not a third panel
    assert both.height - one.height < 60


def test_an_early_stop_ends_the_history_on_the_flip():
    x = torch.full((1, 4, 3, 8, 8), 0.45)
    attack = get_attack("pgd-linf", eps=20 / 255, alpha=1 / 255, steps=16)
    result = attack(Brightness(), x, labels=torch.tensor([0]), stop_when_fooled=0.0)
    # the check after step 13 stops it: its judged iterate is the last record, the one that fools
    assert result.info["stopped_at"] == [13]
    assert [row["fooled"] for row in result.history] == [0.0] * 13 + [1.0]
    assert flip_point(result.history) == 13


def test_a_flip_after_the_last_record_is_said_in_the_caption(tmp_path):
    rows = [{"step": i, "objective": float(i), "fooled": 0.0} for i in range(3)]
    assert history_chart(tmp_path / "after.png", rows, fooled=True)
    assert history_chart(tmp_path / "never.png", rows, fooled=False)
    after, never = Image.open(tmp_path / "after.png"), Image.open(tmp_path / "never.png")
    assert after.height > never.height  # one caption line more
