"""Flickering attack: one RGB offset per frame, uniform over the frame; it acts on frames (time is the
right axis), keeps its optional bound on the 8-bit grid and in the written file, and fools the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidattack.attacks import get_attack
from vidattack.attacks.flicker import flicker_margin_loss, flicker_regularizers
from vidattack.criteria import make_criterion
from vidattack.errors import BadParameterError
from vidattack.models.view import ModelView, Preprocess, sampled_frames

FAST = {"steps": 20}


def bind(view: ModelView, x: torch.Tensor):
    return view.bind(view.plan(x.shape[1]))


class OnlyFrame(nn.Module):
    """A clip classifier `(B, 3, T, H, W)` -> logits whose output depends on frame `frame` only."""

    def __init__(self, frame: int, num_classes: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.frame = frame
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.conv(x[:, :, self.frame]))  # (B, 8, H, W)
        return self.head(nn.functional.adaptive_avg_pool2d(f, 4).flatten(1))


def only_frame_view(frame: int, clip_len: int = 8) -> ModelView:
    return ModelView(
        OnlyFrame(frame).eval(), Preprocess(clip_len=clip_len), [f"c{i}" for i in range(4)], "one"
    )


def assert_uniform_offsets(adv: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor) -> None:
    """Every pixel of frame t, channel c moved by offsets[t, c] levels, clipped at 0 and 255."""
    a, o = (adv[0] * 255).round(), (x[0] * 255).round()  # (T, C, H, W)
    expected = (o + offsets.view(*offsets.shape, 1, 1)).clamp(0, 255)
    assert torch.equal(a, expected)
    unclipped = (a > 0) & (a < 255)
    diff = a - o
    for t in range(a.shape[0]):
        for c in range(3):
            values = diff[t, c][unclipped[t, c]].unique()
            assert values.numel() <= 1, (t, c, values)


def test_the_change_is_one_offset_per_frame_and_channel(toy, toy_video) -> None:
    result = get_attack("flicker", **FAST)(bind(toy, toy_video), toy_video)
    offsets = torch.tensor(result.info["offsets"][0])  # (T, C) in levels
    assert offsets.shape == (8, 3)
    assert offsets.abs().sum() > 0
    assert_uniform_offsets(result.adversarial, toy_video, offsets)


def test_without_regularization_only_the_frame_the_model_sees_flickers(toy_video) -> None:
    view = only_frame_view(3)
    result = get_attack("flicker", beta_0=0.0, **FAST)(bind(view, toy_video), toy_video)
    offsets = torch.tensor(result.info["offsets"][0])
    assert offsets[3].abs().sum() > 0
    assert torch.all(offsets[torch.arange(8) != 3] == 0)
    assert bool(result.success[0])


def test_with_regularization_the_seen_frame_carries_the_largest_offset(toy_video) -> None:
    view = only_frame_view(3)
    model = bind(view, toy_video)
    result = get_attack("flicker")(model, toy_video)
    assert bool(result.success[0])
    offsets = torch.tensor(result.info["offsets"][0]).abs().amax(dim=1)  # (T,)
    assert int(offsets.argmax()) == 3
    # the roughness terms smear it to the neighbours, but only frame 3 matters to the model
    only3 = toy_video.clone()
    only3[:, 3] = result.adversarial[:, 3]
    with torch.no_grad():
        assert int(model(only3).argmax()) == int(result.adversarial_labels[0])


def test_bound_holds_in_whole_levels(toy, toy_video) -> None:
    result = get_attack("flicker", eps=4 / 255, **FAST)(bind(toy, toy_video), toy_video)
    offsets = torch.tensor(result.info["offsets"][0])
    assert offsets.abs().max() <= 4
    levels = (result.adversarial * 255).round()
    assert torch.equal(result.adversarial * 255, levels)
    assert int((levels - (toy_video * 255).round()).abs().max()) <= 4
    assert_uniform_offsets(result.adversarial, toy_video, offsets)


def test_frames_outside_the_selection_do_not_flicker(toy, toy_video) -> None:
    result = get_attack("flicker", frames="2,5", **FAST)(bind(toy, toy_video), toy_video)
    assert result.info["frames"] == [2, 5]
    changed = (result.adversarial != toy_video).any(dim=(2, 3, 4))[0]
    assert not changed[[0, 1, 3, 4, 6, 7]].any()


def test_targeted_attack_reaches_the_target(toy, toy_video) -> None:
    model = bind(toy, toy_video)
    with torch.no_grad():
        target = int(model(toy_video)[0].argsort(descending=True)[1])
    result = get_attack("flicker", **FAST)(model, toy_video, target=target)
    assert int(result.adversarial_labels[0]) == target


def test_model_parameters_are_left_unchanged(toy, toy_video) -> None:
    before = {k: v.clone() for k, v in toy.net.state_dict().items()}
    get_attack("flicker", steps=3)(bind(toy, toy_video), toy_video)
    for k, v in toy.net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_margin_loss_is_zero_once_the_label_trails_by_the_margin() -> None:
    probs = torch.tensor([[0.50, 0.30, 0.20], [0.30, 0.40, 0.30], [0.38, 0.40, 0.22]])
    lp = probs.log()
    untargeted = make_criterion(torch.tensor([0, 0, 0]), None)
    loss = flicker_margin_loss(lp, untargeted, margin=0.05)
    # l_m = p_0 - max other + 0.05: 0.25 (linear part), -0.05 (zero), 0.03 (quadratic part 0.03^2 / 0.05)
    torch.testing.assert_close(loss, torch.tensor([0.25, 0.0, 0.018]), atol=1e-6, rtol=0)
    # toward class 1: l_m = max other - p_1 + 0.05 = 0.25, -0.05 and 0.03 again
    targeted = make_criterion(torch.tensor([0, 0, 0]), 1)
    torch.testing.assert_close(
        flicker_margin_loss(lp, targeted, margin=0.05), torch.tensor([0.25, 0.0, 0.018]), atol=1e-6, rtol=0
    )


def test_roughness_is_circular_over_frames() -> None:
    constant = torch.full((1, 6, 3, 1, 1), 0.1)
    thick, rough1, rough2 = flicker_regularizers(constant)
    torch.testing.assert_close(thick, torch.tensor([0.01]))
    assert float(rough1) == 0.0 and float(rough2) == 0.0
    ramp = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(1, 6, 3, 1, 1)
    _, rough1, _ = flicker_regularizers(ramp)
    # five steps of 1 and the wrap-around step of 5 (frame 0 follows frame 5)
    torch.testing.assert_close(rough1, torch.tensor([(5 * 1 + 25) / 6]))


def test_alpha_auto_needs_a_bound() -> None:
    with pytest.raises(BadParameterError, match="alpha"):
        get_attack("flicker", alpha="auto")
    from vidattack.attacks.loops import auto_alpha_linf

    assert get_attack("flicker", alpha="auto", eps=0.2).hyperparameters()["alpha"] == pytest.approx(
        auto_alpha_linf(0.2)
    )


def test_written_file_holds_one_offset_per_frame_and_channel(toy, tmp_path) -> None:
    from conftest import write_clip

    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    src = write_clip(tmp_path / "noise.mp4", frames)
    report = perturb_file(
        src, get_attack("flicker", **FAST), model=toy, out_dir=tmp_path / "out", device="cpu", heatmaps=False
    )
    offsets = torch.tensor(report["attack"]["info"]["offsets"][0])  # (T, C)
    written = load_video(tmp_path / "out" / "noise.adv.mp4").frames  # (T, H, W, 3)
    to_video = lambda f: f.permute(0, 3, 1, 2).unsqueeze(0).float() / 255  # noqa: E731
    assert_uniform_offsets(to_video(written), to_video(frames), offsets)


# slow: test_targeted_attack_reaches_the_target fools the toy model fast
@pytest.mark.slow
def test_fools_the_bundled_c3d_at_its_defaults(c3d, example_clip) -> None:
    from vidattack.video import load_video

    frames = load_video(example_clip).frames
    plan = c3d.plan(frames.shape[0])
    x = sampled_frames(frames, plan)
    result = get_attack("flicker")(c3d.bind(plan), x)
    assert bool(result.success[0])
    assert_uniform_offsets(result.adversarial, x, torch.tensor(result.info["offsets"][0]))
