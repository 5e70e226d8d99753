"""The sparse l2,1 video attack (Wei et al. 2019): masks, norms, targeted mode, propagation, files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import bind_plan
from counting import VideoCounter
from torch import nn

from vidattack.attacks import get_attack
from vidattack.attacks.context import AttackContext
from vidattack.attacks.counting import CountingModel
from vidattack.attacks.sparse import L21Unbounded, SparseL21, prox_l2, prox_l21, sparse_penalty
from vidattack.criteria import make_criterion
from vidattack.errors import BadParameterError
from vidattack.models.view import ModelView, Preprocess, sampled_frames

# The random toy networks need perturbations of ~25 grey levels per frame, 100x what the trained bundled
# models need, so a penalty weight 100x below the default (tuned on tiny-lrcn).
TOY = {"lam": 1.0}


class ToyLRCN(nn.Module):
    """A per-frame conv, an LSTM and a per-step classifier: the paper's CNN+RNN shape, in milliseconds."""

    def __init__(self, num_classes: int = 5, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feats = torch.relu(self.conv(x.flatten(0, 1))).mean(dim=(2, 3)).view(b, t, -1)  # (B, T, 8)
        out, _ = self.rnn(feats)
        return self.head(out) * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)


def toy_lrcn_view(clip_len: int = 8) -> ModelView:
    net = ToyLRCN().eval().requires_grad_(False)
    pre = Preprocess(clip_len=clip_len, layout="NTCHW")
    return ModelView(net, pre, [f"class{i}" for i in range(5)], "toy-lrcn")


@pytest.fixture
def lrcn_toy() -> ModelView:
    return toy_lrcn_view()


@pytest.fixture
def video() -> torch.Tensor:
    """(1, 8, 3, 24, 32) on the 8-bit grid."""
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (1, 8, 3, 24, 32), generator=g).float() / 255


def write_clip(path: Path, frames: torch.Tensor) -> Path:
    from fractions import Fraction

    from vidattack.video import Video, save_video

    return save_video(
        Video(frames=frames, pts=list(range(len(frames))), time_base=Fraction(1, 8), rate=None), path
    )


def bind(view: ModelView, x: torch.Tensor):
    return view.bind(view.plan(x.shape[1]))


def changed_frames(adv: torch.Tensor, x: torch.Tensor) -> list[int]:
    return (adv - x).flatten(2).ne(0).any(dim=2)[0].nonzero().flatten().tolist()


@pytest.mark.parametrize(
    ("frames", "allowed"),
    [("2", [0, 1]), ("1,4,6", [1, 4, 6]), ("all", list(range(8)))],
)
def test_frames_outside_the_mask_stay_bit_identical(lrcn_toy, video, frames, allowed):
    result = get_attack("sparse", frames=frames, max_iter=30)(bind(lrcn_toy, video), video)

    adv = result.adversarial
    assert set(changed_frames(adv, video)) <= set(allowed)
    for t in set(range(8)) - set(allowed):
        assert torch.equal(adv[:, t], video[:, t])
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert torch.equal(adv, torch.round(adv * 255) / 255)
    assert result.info["frames"] == allowed
    assert result.info["frames_perturbed"] == changed_frames(adv, video)


def test_random_frames_are_seeded(lrcn_toy, video):
    attack = get_attack("sparse", frames="random:3", max_iter=10)
    a = attack(bind(lrcn_toy, video), video, seed=1)
    b = attack(bind(lrcn_toy, video), video, seed=1)

    assert len(a.info["frames"]) == 3
    assert a.info["frames"] == b.info["frames"]
    assert torch.equal(a.adversarial, b.adversarial)


@pytest.mark.parametrize("norm", ["l21", "l2"])
def test_both_norms_fool_and_report_the_paper_metrics(lrcn_toy, video, norm):
    result = get_attack("sparse", norm=norm, **TOY)(bind(lrcn_toy, video), video)

    info = result.info
    delta = result.adversarial - video
    assert result.success.all()
    assert result.params["norm"] == norm
    assert info["norm"] == norm and 1 <= info["iterations"] <= result.params["max_iter"]
    assert len(info["map_per_frame"]) == 8
    assert info["map"] == pytest.approx(float(delta.abs().mean()), rel=1e-5)
    assert info["l21"] == pytest.approx(float(delta[0].flatten(1).norm(dim=1).sum()), rel=1e-5)
    assert result.norms["threat_l21"][0] == pytest.approx(info["l21"], rel=1e-5)
    assert info["sparsity"] == pytest.approx(1 - len(info["frames_perturbed"]) / 8)
    # the CNN+RNN's frame-level predictions, for the report's propagation chart
    assert len(info["frame_predictions_clean"]) == len(info["frame_predictions_adv"]) == 8


def test_the_l21_penalty_is_the_sum_of_frame_rms_and_l2_their_root_sum_of_squares():
    delta = torch.zeros(1, 4, 3, 2, 2)
    delta[0, 0] = 0.3
    delta[0, 2] = -0.4

    assert float(sparse_penalty(delta, "l21")[0]) == pytest.approx(0.7, abs=1e-5)
    assert float(sparse_penalty(delta, "l2")[0]) == pytest.approx(0.5, abs=1e-5)
    assert float(L21Unbounded().measure(delta, torch.zeros_like(delta))[0]) == pytest.approx(
        0.3 * 12**0.5 + 0.4 * 12**0.5, rel=1e-5
    )


def test_the_prox_step_zeroes_exactly_the_frames_whose_norm_is_below_the_threshold():
    delta = torch.zeros(1, 3, 3, 2, 2)
    delta[0, 0] = 0.1  # ||E_0|| = 0.1 * sqrt(12) = 0.346
    delta[0, 1] = -0.3  # ||E_1|| = 1.039
    tau = torch.full((1, 3), 0.5)

    out = prox_l21(delta, tau)

    assert torch.equal(out[0, 0], torch.zeros(3, 2, 2))  # below the threshold: exactly clean
    assert torch.equal(out[0, 2], torch.zeros(3, 2, 2))  # already clean stays clean
    norm1 = 0.3 * 12**0.5
    assert torch.allclose(out[0, 1], delta[0, 1] * (1 - 0.5 / norm1))  # shrunk along its direction


def test_the_l2_prox_shrinks_every_frame_by_one_factor_and_zeroes_none_alone():
    delta = torch.zeros(1, 3, 3, 2, 2)
    delta[0, 0] = 0.1
    delta[0, 1] = -0.3
    total = float(delta.norm())

    out = prox_l2(delta, torch.tensor([0.5]))

    assert torch.allclose(out, delta * (1 - 0.5 / total))
    assert bool(out[0, 0].ne(0).all())  # the weak frame survives: l2 has no per-frame groups
    assert torch.equal(prox_l2(delta, torch.tensor([total])), torch.zeros_like(delta))


def perturbed_frames(result, x) -> int:
    return len(changed_frames(result.adversarial, x))


def test_pruning_is_off_by_default_and_only_removes_frames(lrcn_toy, video):
    model = bind(lrcn_toy, video)
    plain = get_attack("sparse", norm="l2", **TOY)(model, video)
    pruned = get_attack("sparse", norm="l2", prune=True, **TOY)(model, video)

    assert plain.params["prune"] is False and plain.info["frames_pruned"] == []
    assert pruned.success.all()
    kept = set(changed_frames(pruned.adversarial, video))
    assert kept | set(pruned.info["frames_pruned"]) == set(changed_frames(plain.adversarial, video))


@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 20},
        {"frames": "3", "max_iter": 20, "prune": True},
        {"propagate": 3, "max_iter": 20},  # the shortened video's forwards count, no timing passes
    ],
)
def test_the_attack_counts_every_forward_it_makes_and_nothing_else(lrcn_toy, video, params):
    counter = VideoCounter(bind(lrcn_toy, video))
    attack = get_attack("sparse", **params)
    model = CountingModel(counter)  # what the template hands an attack
    ctx = AttackContext(generator=torch.Generator().manual_seed(0), frame_ids=tuple(range(8)), num_frames=8)
    with torch.no_grad():
        criterion = make_criterion(counter.model(video).argmax(dim=1), None)

    threat = attack.threat_model(model, video, criterion, ctx)
    attack.run(model, video, criterion, threat, ctx)

    assert model.queries == counter.seen
    if params.get("propagate"):
        assert ctx.info["propagation"]["shortened_video"] is True
        # one probe of the short video, one forward per iteration, two judgements of the whole video
        assert model.queries == ctx.info["iterations"] + 3
    elif not params.get("prune"):
        assert model.queries == ctx.info["iterations"]


def test_targeted_mode_reaches_the_target(lrcn_toy, video):
    model = bind(lrcn_toy, video)
    clean = int(model(video).argmax())
    target = (clean + 2) % 5

    result = get_attack("sparse", frames="4", **TOY)(model, video, target=target)

    assert result.success.all()
    assert int(result.adversarial_labels[0]) == target
    assert set(result.info["frames_perturbed"]) <= {0, 1, 2, 3}


def test_the_model_is_left_unchanged(lrcn_toy, video):
    before = {k: v.clone() for k, v in lrcn_toy.net.state_dict().items()}
    lrcn_toy.net.requires_grad_(True)  # even a model that wants gradients must get none

    get_attack("sparse", max_iter=5)(bind(lrcn_toy, video), video)

    for k, v in lrcn_toy.net.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in lrcn_toy.net.parameters())


def test_a_3d_cnn_works_without_frame_predictions(toy, toy_video):
    result = get_attack("sparse", frames="3", **TOY)(toy.bind(toy.plan(8)), toy_video)

    assert result.success.all()
    assert set(result.info["frames_perturbed"]) <= {0, 1, 2}
    assert "frame_predictions_adv" not in result.info


def test_propagation_optimizes_a_shortened_video_and_leaves_the_rest_clean(lrcn_toy, video):
    result = get_attack("sparse", propagate=3, **TOY)(bind(lrcn_toy, video), video)

    prop = result.info["propagation"]
    assert result.params["norm"] == "l2"  # the paper's choice in propagation mode
    assert prop["shortened_video"] is True and prop["frames_forwarded"] == 3
    assert prop["seconds_per_iteration"] > 0
    assert set(changed_frames(result.adversarial, video)) <= {0, 1, 2}
    assert torch.equal(result.adversarial[:, 3:], video[:, 3:])


def test_propagation_falls_back_to_the_whole_video_for_several_clips(video):
    view = toy_lrcn_view(clip_len=4)
    view.preprocess = Preprocess(clip_len=4, num_clips=2, layout="NTCHW")

    result = get_attack("sparse", propagate=2, max_iter=5)(bind(view, video), video)

    assert result.info["propagation"]["shortened_video"] is False
    assert "clips" in result.info["propagation"]["not_shortened_because"]
    assert torch.equal(result.adversarial[:, 2:], video[:, 2:])


def test_bad_parameters_fail_with_one_clear_line(lrcn_toy, video):
    with pytest.raises(BadParameterError, match="frames=all with propagate"):
        SparseL21(propagate=4, frames="2")
    with pytest.raises(BadParameterError, match="lam"):
        get_attack("sparse", lam=-1)
    with pytest.raises(BadParameterError, match="frames the model samples"):
        get_attack("sparse", frames="9,10")(bind_plan(lrcn_toy, tuple(range(8)), 12), video)


# -- the bundled CNN+LSTM and files ------------------------------------------------------------------


# Three kinds of motion; benchmarks/sparse_table.py measures the rate over every example (15/19 at K=4).
# slow: bundled models on real clips; test_both_norms_fool_and_report_the_paper_metrics fools the toy LRCN fast
@pytest.mark.slow
@pytest.mark.parametrize("name", ["move_right_1.mp4", "rotate_cw_1.mp4", "zoom_in_1.mp4"])
def test_fools_the_bundled_lrcn_with_four_of_sixteen_frames(lrcn, example_clips, name):
    from vidattack.video import load_video

    frames = load_video(next(p for p in example_clips if p.name == name)).frames
    plan = lrcn.plan(frames.shape[0])
    x = sampled_frames(frames, plan)

    result = get_attack("sparse", frames="4", max_iter=200)(lrcn.bind(plan), x)

    assert result.success.all()
    assert set(result.info["frames_perturbed"]) <= {0, 1, 2, 3}
    assert result.info["map"] * 255 < 4  # a few grey levels on average


# slow: the prox-step tests above check the same zeroing exactly, on tensors
@pytest.mark.slow
def test_the_l21_norm_alone_leaves_frames_exactly_clean_where_l2_does_not(lrcn, example_clips):
    from vidattack.video import load_video

    frames = load_video(next(p for p in example_clips if p.name == "move_left_1.mp4")).frames
    plan = lrcn.plan(frames.shape[0])
    x, model = sampled_frames(frames, plan), lrcn.bind(plan)

    l21 = get_attack("sparse", norm="l21", max_iter=300)(model, x)
    l2 = get_attack("sparse", norm="l2", max_iter=300)(model, x)

    assert l21.success.all() and l2.success.all()
    assert l21.info["frames_pruned"] == []  # the sparsity is the norm's, not pruning's
    assert l21.info["sparsity"] >= 0.5  # at least 8 of 16 frames bit for bit clean
    assert l21.info["sparsity"] > l2.info["sparsity"]


# slow: test_a_3d_cnn_works_without_frame_predictions covers a 3D CNN fast
@pytest.mark.slow
def test_fools_the_bundled_c3d_at_defaults(c3d, example_clip):
    from vidattack.video import load_video

    frames = load_video(example_clip).frames
    plan = c3d.plan(frames.shape[0])
    x = sampled_frames(frames, plan)

    assert get_attack("sparse")(c3d.bind(plan), x).success.all()


def test_the_written_file_keeps_frames_outside_the_mask(tmp_path: Path, lrcn_toy):
    from vidattack.pipeline import perturb_file
    from vidattack.video import load_video

    g = torch.Generator().manual_seed(3)
    (tmp_path / "out").mkdir()
    clip = write_clip(
        tmp_path / "clip.mp4", torch.randint(0, 256, (10, 24, 32, 3), generator=g, dtype=torch.uint8)
    )

    report = perturb_file(
        clip,
        get_attack("sparse", frames="0,2", **TOY),
        model=lrcn_toy,
        out_dir=tmp_path / "out",
        device="cpu",
        heatmaps=False,
    )

    original = load_video(clip).frames
    written = load_video(report["outputs"]["adversarial"]).frames
    changed = (written != original).flatten(1).any(dim=1).nonzero().flatten().tolist()
    assert report["success_after_encode"]
    assert changed and set(changed) <= {0, 2}
    assert report["attack"]["info"]["frames_perturbed"] == changed
