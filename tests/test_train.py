"""Adversarial training: schedules give the paper's budgets, training changes and saves a loadable model,
adversarial training makes a toy model robust, a run resumes where it stopped, and the CLI wires it up."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn
from typer.testing import CliRunner, Result

from vidattack.cli.app import app
from vidattack.models import load_model
from vidattack.models.view import FramePlan, ModelView, Preprocess
from vidattack.train import ClipSet, TrainConfig, train, train_model
from vidattack.train.inner import InnerAttack, robust_accuracy
from vidattack.train.schedules import PAPER_BUDGETS, AdaptiveBudget, CurriculumBudget, FixedBudget

E = 1 / 255


# -- schedules ---------------------------------------------------------------------------------------


def test_paper_budget_set_is_0_to_12_in_steps_of_2() -> None:
    assert [round(b * 255) for b in PAPER_BUDGETS] == [0, 2, 4, 6, 8, 10, 12]


def test_fixed_budget_is_constant() -> None:
    s = FixedBudget(8 * E)
    assert {s.budget(e, b, 5) for e in range(3) for b in range(5)} == {8 * E}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_curriculum_walks_every_level_in_equal_stages(direction: str) -> None:
    s = CurriculumBudget(PAPER_BUDGETS, epochs=7, direction=direction)  # type: ignore[arg-type]
    seq = [round(s.budget(e, b, 10) * 255) for e in range(7) for b in range(10)]
    assert seq[0] == (0 if direction == "up" else 12)
    assert seq[-1] == (12 if direction == "up" else 0)
    assert seq == sorted(seq, reverse=direction == "down")  # monotone
    assert Counter(seq) == {k: 10 for k in range(0, 13, 2)}  # every level the same number of iterations


def test_curriculum_with_fewer_iterations_than_levels_still_ends_at_the_top() -> None:
    s = CurriculumBudget((0.0, 0.5, 1.0), epochs=1)
    assert [s.budget(0, b, 2) for b in range(2)] == [0.0, 0.5]
    assert s.budget(0, 1, 1) == 1.0 or s.budget(0, 0, 1) == 0.0


def test_adaptive_initial_distribution_is_random_normalised_and_seeded() -> None:
    a, b, c = (AdaptiveBudget(PAPER_BUDGETS, epochs=20, seed=s) for s in (1, 1, 2))
    assert torch.allclose(a.probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert bool((a.probs > 0).all())
    assert torch.equal(a.probs, b.probs) and not torch.equal(a.probs, c.probs)


def test_adaptive_update_is_eq_8_the_share_of_the_summed_loss() -> None:
    s = AdaptiveBudget((0.0, 4 * E, 8 * E), epochs=30)
    s.update([1.0, 3.0, 6.0])
    assert s.probs.tolist() == pytest.approx([0.1, 0.3, 0.6])
    draws = Counter(round(s.budget(0, i, 1) * 255) for i in range(4000))
    assert draws[8] / 4000 == pytest.approx(0.6, abs=0.04)
    assert draws[0] / 4000 == pytest.approx(0.1, abs=0.03)
    s.update([0.0, 0.0, 0.0])  # nothing to prefer
    assert s.probs.tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize(("epochs", "xi", "period"), [(30, 10, 4), (100, 10, 10), (3, 10, 1), (70, 5, 5)])
def test_adaptive_period_is_min_xi_and_epochs_over_budgets(epochs: int, xi: int, period: int) -> None:
    s = AdaptiveBudget(PAPER_BUDGETS, epochs=epochs, xi=xi)  # |E| = 7
    assert s.period == period
    assert [e for e in range(epochs) if s.wants_update(e)] == list(range(period - 1, epochs, period))


def test_adaptive_state_round_trip_repeats_the_draws() -> None:
    a = AdaptiveBudget(PAPER_BUDGETS, epochs=10, seed=3)
    a.update([1, 2, 3, 4, 5, 6, 7])
    state = a.state_dict()
    first = [a.budget(0, i, 1) for i in range(20)]
    b = AdaptiveBudget(PAPER_BUDGETS, epochs=10, seed=99)
    b.load_state_dict(state)
    assert [b.budget(0, i, 1) for i in range(20)] == first


# -- a toy problem where clean training is not robust ------------------------------------------------


def _toy(n: int, seed: int) -> ClipSet:
    """Two classes, 4 frames of 8x8: a 2x2 patch that says the class in 85% of the videos with contrast
    0.3 (robust to eps 0.06), and every other pixel shifted by 0.04 toward the class (always right,
    but gone under eps 0.06). Clean training leans on the shift; adversarial training on the patch."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    s = (2 * y - 1).float().view(n, 1, 1, 1, 1)
    x = 0.5 + 0.02 * torch.randn(n, 4, 8, 8, 3, generator=g)  # (N, T, H, W, C)
    x = x + 0.04 * s
    agree = torch.where(torch.rand(n, generator=g) < 0.85, 1.0, -1.0).view(n, 1, 1, 1, 1)
    x[:, :, :2, :2, :] = 0.5 + 0.3 * s * agree
    frames = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    plan = FramePlan(num_frames=4, frame_ids=(0, 1, 2, 3), clips=((0, 1, 2, 3),))
    return ClipSet(frames, y, plan)


def _toy_view(seed: int = 0) -> ModelView:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 8 * 8, 2))
    pre = Preprocess(clip_len=4, num_clips=1, resize=None, crop=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    return ModelView(net=net, preprocess=pre, labels=["neg", "pos"], name="toy")


def test_adversarial_training_makes_the_toy_model_robust_to_its_attack() -> None:
    train_set, test_set = _toy(256, 0), _toy(100, 1)
    common = dict(epochs=8, batch_size=32, lr=0.02, seed=0, eval_size=0)
    clean = train(_toy_view(), train_set, None, TrainConfig(**common)).view  # type: ignore[arg-type]
    at = train(
        _toy_view(),
        train_set,
        None,
        TrainConfig(**common, attack="pgd-linf", eps=0.06, alpha=0.02, steps=5),  # type: ignore[arg-type]
    ).view
    attacker = InnerAttack(TrainConfig(attack="pgd-linf", eps=0.06, alpha=0.02, steps=5))
    r_clean = robust_accuracy(clean, test_set, attacker, 0.06)
    r_at = robust_accuracy(at, test_set, attacker, 0.06)
    assert r_clean <= 0.3
    assert r_at >= r_clean + 0.4, (r_clean, r_at)


class _Killed(Exception):
    pass


def _kill_after_first_epoch(event: dict[str, object]) -> None:
    if event["event"] == "epoch":
        raise _Killed


def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    data = _toy(64, 2)
    cfg = TrainConfig(
        epochs=2, batch_size=16, lr=0.01, seed=1, attack="pgd-linf", eps=0.03, steps=1, eval_size=0
    )
    whole = train(_toy_view(), data, None, cfg).view
    state = tmp_path / "state.pt"
    with pytest.raises(_Killed):
        train(_toy_view(), data, None, cfg, checkpoint=state, progress=_kill_after_first_epoch)
    assert torch.load(state, weights_only=True)["epoch"] == 1
    resumed = train(_toy_view(seed=5), data, None, cfg, resume=state).view
    for a, b in zip(whole.net.parameters(), resumed.net.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    data = _toy(16, 3)
    state = tmp_path / "state.pt"
    train(_toy_view(), data, None, TrainConfig(epochs=1, batch_size=8, eval_size=0), checkpoint=state)
    with pytest.raises(Exception, match="settings"):
        train(_toy_view(), data, None, TrainConfig(epochs=1, batch_size=8, lr=0.5, eval_size=0), resume=state)


# -- the real thing, a few steps ---------------------------------------------------------------------


def test_a_few_steps_change_the_weights_and_write_a_loadable_model(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    before = {k: v.clone() for k, v in load_model("tiny-c3d").net.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=5, attack="pgd-linf", eps=4 * E, steps=1, eval_size=2)
    result = train_model(cfg, data="synthetic:1:5", heldout="synthetic:1:6", out=out, init="tiny-c3d")
    view = load_model(str(out))
    after = view.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert view.labels == load_model("tiny-c3d").labels
    assert view.preprocess == load_model("tiny-c3d").preprocess
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    training, heldout = json.loads(meta["training"]), json.loads(meta["heldout"])
    assert training["attack"] == "pgd-linf" and training["eps"] == pytest.approx(4 * E)
    assert heldout["n"] == 10 and 0 <= heldout["clean"] <= 1 and heldout["robust"] is not None
    assert result.history[0]["epoch"] == 1


def test_denoiser_trains_with_the_classifier() -> None:
    from vidattack.models.denoiser import DenoisedNet

    view = _toy_view()
    cfg = TrainConfig(
        epochs=1, batch_size=16, attack="pgd-linf", eps=0.03, steps=1, denoiser=True, eval_size=0
    )
    trained = train(view, _toy(32, 4), None, cfg).view
    assert isinstance(trained.net, DenoisedNet)
    # the residual's last layer starts at zero: it moved, so the denoiser was trained
    assert float(trained.net.denoiser.out.weight.abs().sum()) > 0


def test_denoiser_model_is_saved_and_loaded_whole(tmp_path: Path) -> None:
    from vidattack.models.denoiser import DenoisedNet, Denoiser
    from vidattack.models.tiny import TinyC3D
    from vidattack.models.trained import save_trained

    tiny = load_model("tiny-c3d")
    net = DenoisedNet(Denoiser(), TinyC3D(10))
    nn.init.normal_(net.denoiser.out.weight, std=0.01)
    out = save_trained(
        net,
        tiny.preprocess,
        tiny.labels,
        tmp_path / "gat.safetensors",
        arch="TinyC3D",
        training={"denoiser": True},
        heldout={},
    )
    view = load_model(str(out))
    assert isinstance(view.net, DenoisedNet)
    x = torch.rand(1, 16, 3, 112, 112)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(
            view.bind(view.plan(16))(x),
            tiny.__class__(net, tiny.preprocess, tiny.labels, "x").bind(view.plan(16))(x),
            atol=1e-5,
        )


def _gat(**extra: object) -> TrainConfig:
    """GAT on the toy problem: PGD in the loop, the denoiser and a GAN weight of 0.3 (APE-GAN's)."""
    settings: dict[str, object] = dict(
        epochs=1, batch_size=16, attack="pgd-linf", eps=0.03, steps=1, denoiser=True, gamma_gan=0.3
    )
    settings.update(extra)
    return TrainConfig(eval_size=0, **settings)  # type: ignore[arg-type]


def test_gan_weight_trains_a_discriminator_beside_the_denoiser() -> None:
    from vidattack.models.denoiser import DenoisedNet
    from vidattack.train.discriminator import Discriminator, new_discriminator

    cfg = _gat()
    result = train(_toy_view(), _toy(32, 4), None, cfg)  # two steps
    assert isinstance(result.discriminator, Discriminator)
    start = new_discriminator(seed=cfg.seed).state_dict()  # what training started from
    trained = result.discriminator.state_dict()
    assert all(not torch.equal(start[k], trained[k]) for k in start)
    assert 0 < result.history[0]["d_loss"] < 10
    assert isinstance(result.view.net, DenoisedNet)
    assert float(result.view.net.denoiser.out.weight.abs().sum()) > 0


def test_gan_weight_0_builds_no_discriminator(monkeypatch: pytest.MonkeyPatch) -> None:
    import vidattack.train.loop

    def refuse(**_: object) -> None:
        raise AssertionError("a discriminator was built with gamma_2 = 0")

    monkeypatch.setattr(vidattack.train.loop, "new_discriminator", refuse)
    result = train(_toy_view(), _toy(32, 4), None, _gat(gamma_gan=0.0))
    assert result.discriminator is None
    assert "d_loss" not in result.history[0]


def test_gan_weight_without_the_denoiser_is_refused() -> None:
    with pytest.raises(Exception, match="--gan-weight needs --denoiser"):
        train(_toy_view(), _toy(16, 4), None, _gat(denoiser=False))


def test_resumed_gan_run_ends_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    data, cfg = _toy(64, 2), _gat(epochs=2, lr=0.01, seed=1)
    whole = train(_toy_view(), data, None, cfg)
    state = tmp_path / "state.pt"
    with pytest.raises(_Killed):
        train(_toy_view(), data, None, cfg, checkpoint=state, progress=_kill_after_first_epoch)
    resumed = train(_toy_view(seed=5), data, None, cfg, resume=state)
    assert whole.discriminator is not None and resumed.discriminator is not None
    pairs = [
        *zip(whole.view.net.parameters(), resumed.view.net.parameters(), strict=True),
        *zip(whole.discriminator.parameters(), resumed.discriminator.parameters(), strict=True),
    ]
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-6)


# -- CLI ---------------------------------------------------------------------------------------------


def _fine_tune_args(out: Path, *extra: str, eval_size: int = 2) -> list[str]:
    """`vidattack train`: tiny-c3d fine-tuned for one epoch of one-step PGD on 10 synthetic clips."""
    return [
        *("train", "--init", "tiny-c3d", "--data", "synthetic:1:5", "--heldout", "synthetic:1:6"),
        *("--adversarial", "pgd-linf", "--eps", "4/255", "--steps", "1", *extra),
        *("--epochs", "1", "--batch-size", "10", "--eval-size", str(eval_size), "--out", str(out)),
        *("--format", "json", "--quiet"),
    ]


def test_cli_train_writes_a_model_other_commands_load(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    args = _fine_tune_args(out)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    record = json.loads(r.stdout)
    assert record["attack"] == "pgd-linf" and record["out"] == str(out)
    assert not out.with_name(out.name + ".resume.pt").exists()
    assert load_model(str(out)).num_classes == 10
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "exists" in again.output  # OutputExistsError


def _refused(tmp_path: Path, *options: str, quiet: bool = False) -> Result:
    """`vidattack train --arch tiny-c3d --data synthetic:1 OPTIONS --out ...`, for options it refuses."""
    args = [
        "train",
        "--arch",
        "tiny-c3d",
        "--data",
        "synthetic:1",
        *options,
        "--out",
        str(tmp_path / "m.safetensors"),
    ]
    return CliRunner().invoke(app, [*args, "--quiet"] if quiet else args)


def test_cli_schedule_needs_an_attack(tmp_path: Path) -> None:
    r = _refused(tmp_path, "--schedule", "adaptive")
    assert r.exit_code == 2
    assert "--adversarial" in r.output


def test_cli_refuses_black_box_inner_attack(tmp_path: Path) -> None:
    r = _refused(tmp_path, "--adversarial", "vbad", quiet=True)
    assert r.exit_code == 2
    assert "white-box" in r.output


def test_models_lists_the_robust_models_with_their_training_attack() -> None:
    r = CliRunner().invoke(app, ["models", "--format", "json"])
    assert r.exit_code == 0
    described = {m["name"]: m["description"] for m in json.loads(r.stdout)["models"]}
    assert "pgd-linf" in described["tiny-c3d-at-pgd"]
    assert "multav-linf" in described["tiny-c3d-at-multav"]


@pytest.mark.parametrize("name", ["tiny-c3d-at-pgd", "tiny-c3d-at-multav"])
def test_bundled_robust_models_record_their_training(name: str) -> None:
    from vidattack.models.bundled import weights_path
    from vidattack.models.trained import read_training_metadata

    meta = read_training_metadata(weights_path(name))
    attack = "pgd-linf" if name.endswith("pgd") else "multav-linf"
    assert meta["training"]["attack"] == attack and meta["training"]["init"] == "tiny-c3d"
    assert meta["heldout"]["attack"] == attack and meta["heldout"]["robust"] is not None


@pytest.mark.slow  # ~4 s on a quiet core: a GAN epoch through the CLI
def test_cli_gan_training_writes_a_model_that_loads_and_predicts(tmp_path: Path, example_clip: Path) -> None:
    from vidattack.models.denoiser import DenoisedNet

    out = tmp_path / "gat.safetensors"
    r = CliRunner().invoke(app, _fine_tune_args(out, "--denoiser", "--gan-weight", "0.3", eval_size=0))
    assert r.exit_code == 0, r.output
    assert "d_loss" in json.loads(r.stdout)["history"][0]
    with safe_open(str(out), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert json.loads(meta["training"])["gamma_gan"] == 0.3
    assert all(k.startswith(("denoiser.", "classifier.")) for k in keys)  # G and F, no discriminator
    view = load_model(str(out))
    assert isinstance(view.net, DenoisedNet)
    predicted = CliRunner().invoke(app, ["predict", str(example_clip), "--model", str(out), "-f", "jsonl"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["label"] in view.labels


def test_cli_gan_weight_needs_the_denoiser(tmp_path: Path) -> None:
    r = _refused(tmp_path, "--gan-weight", "0.3", quiet=True)
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "Error: --gan-weight needs --denoiser (the GAN term trains GAT's denoiser)"
    ]
