"""Frame saliency attack: it acts on frames (time is the right axis), perturbs as few as it needs in
order of saliency, leaves every other frame bit-identical (in the tensor and in the written file), and
fools the bundled model."""

from __future__ import annotations

import pytest
import torch
from conftest import bind_plan
from torch import nn

from vidattack.attacks import get_attack
from vidattack.models.view import ModelView, Preprocess, sampled_frames

MODES = ["iterative", "iterative-refresh"]
FAST = {"eps": 16 / 255, "alpha": 4 / 255, "steps": 5}


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
    net = OnlyFrame(frame).eval()
    return ModelView(net, Preprocess(clip_len=clip_len), [f"c{i}" for i in range(4)], "only-frame")


def untouched_frames_are_identical(adv: torch.Tensor, x: torch.Tensor, perturbed: list[int]) -> None:
    for f in range(x.shape[1]):
        if f not in perturbed:
            assert torch.equal(adv[:, f], x[:, f]), f"frame {f} changed"


@pytest.mark.parametrize("mode", MODES)
def test_a_model_that_sees_one_frame_gets_that_frame_perturbed(mode, toy_video) -> None:
    view = only_frame_view(3)
    result = get_attack("frame-saliency", mode=mode, **FAST)(bind(view, toy_video), toy_video)
    assert bool(result.success[0])
    assert result.info["frame_order"] == [[3]]
    assert result.info["frames_perturbed"] == [1]
    saliency = torch.tensor(result.info["saliency"][0])
    assert saliency[3] > 0 and torch.all(saliency[torch.arange(8) != 3] == 0)
    untouched_frames_are_identical(result.adversarial, toy_video, [3])
    assert (result.adversarial[:, 3] != toy_video[:, 3]).any()


@pytest.mark.parametrize("mode", MODES)
def test_frames_outside_the_selection_are_bit_identical(mode, toy, toy_video) -> None:
    # off-grid input: plain rounding would change every frame, the frame mask must not
    x = toy_video * 0.99 + 0.3 / 255
    result = get_attack("frame-saliency", mode=mode, **FAST)(bind(toy, x), x)
    order = result.info["frame_order"][0]
    assert result.info["frames_perturbed"] == [len(order)]
    assert len(set(order)) == len(order) >= 1
    untouched_frames_are_identical(result.adversarial, x, order)


def test_iterative_mode_takes_frames_in_order_of_saliency(toy, toy_video) -> None:
    result = get_attack("frame-saliency", **FAST)(bind(toy, toy_video), toy_video)
    saliency = torch.tensor(result.info["saliency"][0])
    order = result.info["frame_order"][0]
    ranked = torch.argsort(-saliency, stable=True).tolist()
    assert order == ranked[: len(order)]


def test_it_stops_at_the_first_frame_count_that_fools(toy, toy_video) -> None:
    model = bind(toy, toy_video)
    result = get_attack("frame-saliency", **FAST)(model, toy_video)
    k = result.info["frames_perturbed"][0]
    assert bool(result.success[0]) and 1 <= k < 8
    # one frame fewer: the same frames minus the last one taken do not fool the model
    fewer = result.adversarial.clone()
    last = result.info["frame_order"][0][-1]
    fewer[:, last] = toy_video[:, last]
    with torch.no_grad():
        assert int(model(fewer).argmax()) == int(result.clean_labels[0])


def test_one_shot_perturbs_every_frame(toy, toy_video) -> None:
    result = get_attack("frame-saliency", mode="one-shot", **FAST)(bind(toy, toy_video), toy_video)
    assert result.info["frames_perturbed"] == [8]
    assert (result.adversarial != toy_video).any(dim=(2, 3, 4)).all()


def test_frame_order_is_in_video_frame_numbers(toy, toy_video) -> None:
    ids = tuple(range(10, 26, 2))
    result = get_attack("frame-saliency", **FAST)(bind_plan(toy, ids, 40), toy_video)
    assert all(f in ids for f in result.info["frame_order"][0])


@pytest.mark.parametrize("mode", ["one-shot", *MODES])
def test_budget_holds_on_the_8_bit_grid(mode, toy, toy_video) -> None:
    result = get_attack("frame-saliency", mode=mode, eps=0.015, alpha=0.005, steps=5)(
        bind(toy, toy_video), toy_video
    )
    adv = result.adversarial
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    levels = (adv * 255).round()
    assert torch.equal(adv * 255, levels)
    assert int((levels - (toy_video * 255).round()).abs().max()) <= 3  # 0.015 = 3.8 levels


@pytest.mark.parametrize("mode", MODES)
def test_targeted_attack_reaches_the_target(mode, toy, toy_video) -> None:
    model = bind(toy, toy_video)
    with torch.no_grad():
        target = int(model(toy_video)[0].argsort(descending=True)[1])
    result = get_attack("frame-saliency", mode=mode, eps=32 / 255, alpha=8 / 255, steps=10)(
        model, toy_video, target=target
    )
    assert int(result.adversarial_labels[0]) == target
    assert result.info["frames_perturbed"][0] >= 1


def test_model_parameters_are_left_unchanged(toy, toy_video) -> None:
    before = {k: v.clone() for k, v in toy.net.state_dict().items()}
    get_attack("frame-saliency", mode="iterative-refresh", **FAST)(bind(toy, toy_video), toy_video)
    for k, v in toy.net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_alpha_auto_uses_the_papers_step_rule() -> None:
    from vidattack.attacks.loops import auto_alpha_linf

    attack = get_attack("frame-saliency", alpha="auto")
    assert attack.hyperparameters()["alpha"] == pytest.approx(auto_alpha_linf(0.015))


def test_written_file_keeps_unselected_frames_identical(tmp_path) -> None:
    from conftest import write_clip

    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    src = write_clip(tmp_path / "noise.mp4", frames)
    report = perturb_file(
        src,
        get_attack("frame-saliency", **FAST),
        model=only_frame_view(5),
        out_dir=tmp_path / "out",
        device="cpu",
        heatmaps=False,
    )
    assert report["attack"]["info"]["frame_order"] == [[5]]
    written = load_video(tmp_path / "out" / "noise.adv.mp4").frames
    changed = (written != frames).flatten(1).any(dim=1)  # (T,)
    assert changed.tolist() == [f == 5 for f in range(8)]


# slow: the targeted toy tests above fool a model fast
@pytest.mark.slow
def test_fools_the_bundled_c3d_at_its_defaults(c3d, example_clip) -> None:
    from vidattack.video import load_video

    frames = load_video(example_clip).frames
    plan = c3d.plan(frames.shape[0])
    x = sampled_frames(frames, plan)
    result = get_attack("frame-saliency")(c3d.bind(plan), x)
    assert bool(result.success[0])
    k = result.info["frames_perturbed"][0]
    assert 1 <= k <= x.shape[1]
    untouched_frames_are_identical(
        result.adversarial, x, [plan.frame_ids.index(f) for f in result.info["frame_order"][0]]
    )
