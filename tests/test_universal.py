"""Universal sparse perturbations: learn, save, load, apply to other shapes, fooling rate, CLI."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import save_file
from test_sparse import toy_lrcn_view
from typer.testing import CliRunner

from vidattack.attacks.registry import get_attack_from_text
from vidattack.attacks.universal import UniversalAttack, UniversalPerturbation
from vidattack.errors import BadCheckpointError, BadParameterError
from vidattack.perturbation_file import load_perturbation, metadata, save_perturbation
from vidattack.pipeline.universal import evaluate_universal, fooling_rate, learn_universal


def clips(n: int, seed: int = 0, t: int = 8, h: int = 24, w: int = 32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, h, w, 3), generator=g, dtype=torch.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def view():
    return toy_lrcn_view()


@pytest.fixture(scope="module")
def learned(view) -> UniversalPerturbation:
    # the random toy net needs large perturbations, hence the high learning rate
    return learn_universal(clips(4), view, frames="3", epochs=30, batch_size=2, lr=0.05, seed=1)


def test_learning_fools_the_training_videos_with_the_masked_frames_only(view, learned):
    assert learned.shape == (8, 24, 32)
    assert learned.frames == [0, 1, 2]
    assert float(learned.delta[3:].abs().max()) == 0.0
    assert float(learned.delta[:3].abs().max()) > 0.0
    assert learned.model == "toy-lrcn" and learned.params["lam"] == UniversalAttack().lam
    assert fooling_rate(learned, clips(4), view) == 1.0


def test_save_load_round_trip_keeps_tensor_and_metadata(tmp_path: Path, learned):
    path = save_perturbation(learned, tmp_path / "u.safetensors")

    again = load_perturbation(path)

    assert torch.equal(again.delta, learned.delta)
    assert again.frames == learned.frames
    assert again.model == learned.model
    assert again.preprocess == learned.preprocess
    assert again.params == learned.params and again.created == learned.created
    video = clips(1, seed=5)[0]
    assert torch.equal(again.apply(video), learned.apply(video))


def test_apply_changes_only_masked_frames_and_stays_uint8(learned):
    video = clips(1, seed=9)[0]

    adv = learned.apply(video)

    assert adv.dtype == torch.uint8 and adv.shape == video.shape
    assert torch.equal(adv[3:], video[3:])
    assert not torch.equal(adv[:3], video[:3])
    expected = (video[:3].float() + learned.delta[:3] * 255).round().clamp(0, 255)
    assert (adv[:3].float() - expected).abs().max() <= 1  # rounding of the float sum


@pytest.mark.parametrize(("t", "h", "w"), [(8, 48, 64), (8, 13, 17), (20, 24, 32), (5, 30, 30)])
def test_apply_resizes_to_any_video_shape(learned, t, h, w):
    video = clips(1, seed=2, t=t, h=h, w=w)[0]

    adv = learned.apply(video)

    assert adv.shape == video.shape and adv.dtype == torch.uint8
    sampled = learned.sampled_ids(t)
    changed = (adv != video).flatten(1).any(dim=1).nonzero().flatten().tolist()
    assert changed, "the perturbation vanished"
    assert set(changed) <= set(sampled)  # frames the model never sees stay untouched


def test_time_is_matched_by_nearest_frame_so_the_mask_survives(learned):
    fitted = learned.fitted(16, 24, 32)  # twice as many sampled frames as learned

    nonzero = fitted.flatten(1).abs().amax(dim=1).gt(0).nonzero().flatten().tolist()
    assert nonzero == [0, 1, 2, 3, 4, 5]  # frames 0-2 of 8 stretch onto 0-5 of 16
    assert torch.equal(fitted[1], fitted[0])


def test_a_longer_video_is_perturbed_where_the_model_looks(learned):
    # toy preprocessing: one clip of 8 frames, centred in a 20-frame video
    assert learned.sampled_ids(20) == tuple(range(6, 14))


def test_bad_files_fail_with_one_clear_line(tmp_path: Path, learned):
    with pytest.raises(BadParameterError, match="no such file"):
        load_perturbation(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(BadCheckpointError, match="safetensors"):
        load_perturbation(junk)
    foreign = tmp_path / "weights.safetensors"
    save_file({"conv.weight": torch.zeros(2)}, str(foreign))
    with pytest.raises(BadCheckpointError, match="universal perturbation"):
        load_perturbation(foreign)
    wrong = tmp_path / "wrong.safetensors"
    meta = {**metadata(learned), "shape": json.dumps([4, 4, 4, 3])}
    save_file({"perturbation": learned.delta}, str(wrong), meta)
    with pytest.raises(BadCheckpointError, match="shape"):
        load_perturbation(wrong)


def test_bad_inputs_fail_with_one_clear_line(view, learned):
    with pytest.raises(BadParameterError, match="uint8"):
        learned.apply(torch.zeros(8, 24, 32, 3))
    with pytest.raises(BadParameterError, match="shape"):
        learned.apply(torch.zeros(8, 24, 32, dtype=torch.uint8))
    with pytest.raises(BadParameterError, match="at least one"):
        learn_universal([], view)
    # the settings are the universal attack's parameters: parsed and checked like any attack's
    with pytest.raises(BadParameterError, match="unknown parameter 'eps'"):
        get_attack_from_text("universal", {"eps": "1"})
    with pytest.raises(BadParameterError, match="lam"):
        get_attack_from_text("universal", {"lam": "-1"})


def test_targeted_universal_perturbation(view):
    videos = clips(3, seed=4)
    target = 1

    pert = learn_universal(videos, view, target=target, epochs=30, lam=0.01, lr=0.05)

    ev = evaluate_universal(pert, videos, view, target=target)
    assert ev.adversarial_predictions == [target] * 3
    assert ev.rate == 1.0


# -- the `vidattack universal` command ----------------------------------------------------------------


def write_folder(folder: Path, videos: list[torch.Tensor]) -> Path:
    from vidattack.video import Video, save_video

    folder.mkdir()
    for i, frames in enumerate(videos):
        video = Video(frames=frames, pts=list(range(len(frames))), time_base=Fraction(1, 8), rate=None)
        save_video(video, folder / f"clip{i}.mp4")
    return folder


@pytest.fixture
def app(monkeypatch, view) -> typer.Typer:
    import vidattack.models
    from vidattack.cli import app

    monkeypatch.setattr(vidattack.models, "load_model", lambda spec, **kwargs: view)
    return app


def test_cli_learns_saves_and_reports_train_and_holdout_fooling(tmp_path: Path, app):
    train = write_folder(tmp_path / "train", clips(3, seed=11))
    held = write_folder(tmp_path / "held", clips(2, seed=12))
    out = tmp_path / "u.safetensors"

    args = ["universal", str(train), "--out", str(out), "--holdout", str(held), "--format", "json"]

    result = CliRunner().invoke(app, [*args, "--set", "epochs=5", "--set", "frames=2"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["train"]["total"] == 3 and data["holdout"]["total"] == 2
    assert 0.0 <= data["train"]["fooling_rate"] <= 1.0
    assert data["frames"] == [0, 1] and data["params"]["epochs"] == 5
    assert load_perturbation(out).stats["train_fooling_rate"] == data["train"]["fooling_rate"]


def test_cli_errors_are_one_line_with_the_error_class_exit_code(tmp_path: Path, app):
    train = write_folder(tmp_path / "train", clips(1))
    out = tmp_path / "u.safetensors"
    out.write_bytes(b"")
    runner = CliRunner()

    exists = runner.invoke(app, ["universal", str(train), "--out", str(out)])
    unknown = runner.invoke(
        app, ["universal", str(train), "--out", str(out), "--overwrite", "--set", "eps=1"]
    )
    empty = runner.invoke(app, ["universal", str(tmp_path / "nothing"), "--out", str(out), "--overwrite"])

    assert exists.exit_code == 1 and "exists" in exists.stderr
    assert unknown.exit_code == 2 and "unknown parameter 'eps'" in unknown.stderr
    assert empty.exit_code == 2 and "folder of videos" in empty.stderr
    for r in (exists, unknown, empty):
        assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr


def test_apply_goes_through_the_pipeline_with_the_report_keys_of_any_attack(tmp_path: Path, view, learned):
    from vidattack.pipeline import perturb_file

    video = write_folder(tmp_path / "in", clips(1, seed=21)) / "clip0.mp4"
    pert = load_perturbation(save_perturbation(learned, tmp_path / "u.safetensors"))

    applied = perturb_file(video, UniversalAttack(perturbation=pert), model=view, out_dir=tmp_path / "a")
    attacked = perturb_file(video, "fgsm", model=view, out_dir=tmp_path / "b")

    def keys(report, prefix=""):
        found = set()
        for k, v in report.items():
            found.add(prefix + k)
            if isinstance(v, dict) and k not in ("info", "params", "outputs", "threat"):
                found |= keys(v, prefix + k + ".")
        return found

    assert keys(applied) == keys(attacked)
    assert applied["attack"]["name"] == "universal" and applied["queries"] == 0
    assert applied["attack"]["params"] == {"perturbation": str(tmp_path / "u.safetensors")}
    assert applied["attack"]["info"]["frames"] == learned.frames
    from vidattack.video import load_video

    written = load_video(tmp_path / "a" / "clip0.adv.mp4").frames
    assert torch.equal(written, learned.apply(load_video(video).frames)), "not the perturbation's pixels"


def test_universal_is_an_ordinary_attack_that_learns_on_its_batch(view):
    x = torch.stack([c.permute(0, 3, 1, 2) for c in clips(2, seed=3)]).float() / 255  # (2, 8, 3, 24, 32)
    model = view.bind(view.plan(8))

    result = get_attack_from_text("universal", {"epochs": "3", "frames": "2"})(model, x, seed=1)

    delta = result.adversarial - x
    assert float(delta[:, 2:].abs().max()) == 0.0, "frames outside the mask changed"
    assert result.info["epochs_run"] == 3 and result.info["frames"] == [0, 1]
    assert result.params["epochs"] == 3 and "perturbation" not in result.params
