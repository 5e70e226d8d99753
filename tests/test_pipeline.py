"""One file in, every output out: the library behind `vidattack perturb`, on a toy model."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from conftest import write_clip

from vidattack.errors import BadParameterError, BadVideoError, OutputExistsError
from vidattack.pipeline import perturb_file, predict_file
from vidattack.pipeline.report import perturbation_stats
from vidattack.video import load_video


@pytest.fixture
def clip(tmp_path):
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    frames[:, :4, :4] = 0
    return write_clip(tmp_path / "noise.mp4", frames)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_perturb_file_writes_every_output_and_a_complete_report(clip, toy, tmp_path):
    before = sha(clip)
    out = tmp_path / "out"

    report = perturb_file(clip, "pgd-linf", model=toy, out_dir=out, seed=5, device="cpu")

    assert sha(clip) == before, "the input was modified"
    for name in (
        "noise.adv.mp4",
        "noise.heatmap.mp4",
        "noise.heatmap.png",
        "noise.frames.png",
        "noise.report.json",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*")), "a temporary file was left behind"
    on_disk = json.loads((out / "noise.report.json").read_text())
    assert on_disk["attack"]["name"] == "pgd-linf"
    assert on_disk["attack"]["params"] == {
        "eps": 4 / 255,
        "alpha": 1 / 255,
        "steps": 5,
        "random_start": False,
    }
    for key in (
        "input",
        "model",
        "clean",
        "adversarial",
        "reencoded",
        "success",
        "success_after_encode",
        "perturbation",
        "queries",
        "outputs",
        "timing",
        "seed",
        "versions",
    ):
        assert key in on_disk, key
    assert on_disk["model"]["name"] == "toy"
    assert set(on_disk["clean"]) >= {"index", "label", "confidence", "top"}
    assert set(on_disk["timing"]) >= {"decode", "attack", "encode"}
    assert report["queries"] == 5 and report["seed"] == 5


def test_the_budget_holds_on_the_written_file(clip, toy, tmp_path):
    report = perturb_file(clip, "pgd-linf", model=toy, out_dir=tmp_path, device="cpu")
    clean = load_video(clip).frames
    written = load_video(tmp_path / "noise.adv.mp4").frames
    assert int((written.short() - clean.short()).abs().max()) <= 4
    assert report["perturbation"]["linf"] <= 4 / 255 + 1e-9
    assert report["perturbation"] == perturbation_stats(clean, written)
    assert report["adversarial"]["index"] == report["reencoded"]["index"], (
        "lossless output changed the prediction"
    )


def test_existing_outputs_are_not_overwritten_silently(clip, toy, tmp_path):
    perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, device="cpu")
    with pytest.raises(OutputExistsError, match="use --overwrite"):
        perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, device="cpu")
    report = perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, device="cpu", overwrite=True)
    assert report["status"] == "ok"


def test_targets_are_checked_against_the_model_labels(clip, toy, tmp_path):
    with pytest.raises(BadParameterError, match="expected a label of model toy"):
        perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, target="dog", device="cpu")
    report = perturb_file(clip, "pgd-linf", model=toy, out_dir=tmp_path, target="class4", device="cpu")
    assert report["target"] == {"index": 4, "label": "class4"}
    assert report["success"] == (report["adversarial"]["index"] == 4)


def test_bad_files_raise_one_clear_error(toy, tmp_path):
    with pytest.raises(BadVideoError, match="no such file"):
        perturb_file(tmp_path / "missing.mp4", "fgsm", model=toy, out_dir=tmp_path, device="cpu")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(BadVideoError):
        perturb_file(junk, "fgsm", model=toy, out_dir=tmp_path, device="cpu")
    assert not (tmp_path / "junk.report.json").exists()


def test_predict_file_reports_top_k(clip, toy):
    pred = predict_file(clip, model=toy, device="cpu", top_k=3)
    assert next(t["index"] for t in pred["top"]) == pred["index"]
    assert len(pred["top"]) == 3
    assert sum(t["confidence"] for t in pred["top"]) <= 1 + 1e-6


def test_perturbation_stats_measure_the_written_frames():
    clean = torch.full((4, 2, 2, 3), 100, dtype=torch.uint8)
    adv = clean.clone()
    adv[1, 0, 0, 0] = 110
    adv[3, 1, 1, 2] = 90
    stats = perturbation_stats(clean, adv)
    assert stats["linf"] == pytest.approx(10 / 255)
    assert stats["frames_perturbed"] == 2 and stats["perturbed_frames"] == [1, 3]
    assert stats["sparsity"] == 0.5
    assert stats["ratio_max"] == pytest.approx(100 / 90)  # 100 -> 90 is the larger ratio
    assert stats["per_frame_map"][0] == 0 and stats["per_frame_map"][1] == pytest.approx(10 / 255 / 12)
    black = torch.zeros_like(clean)
    unbounded = perturbation_stats(black, black + 1)
    assert unbounded["ratio_max"] is None and "unbounded" in unbounded["ratio_max_reason"]
    assert stats["ratio_max_reason"] is None


def test_threads_zero_keeps_torch_default_and_n_sets_it():
    from vidattack.pipeline import set_cpu_threads

    before = torch.get_num_threads()
    try:
        set_cpu_threads(0)
        assert torch.get_num_threads() == before
        set_cpu_threads(before + 1)
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)


# -- the stages, each alone ---------------------------------------------------------------------------


def test_decode_and_sample_give_the_models_frames_and_a_bound_model(clip, toy):
    from vidattack.pipeline.stages import decode, sample

    video = decode(clip, toy)
    sampled = sample(video, toy, None, torch.device("cpu"))

    assert video.frames.shape == (8, 40, 48, 3) and video.num_frames == 8  # the model samples all 8
    assert sampled.plan.frame_ids == tuple(range(8))
    assert sampled.x.shape == (1, 8, 3, 40, 48) and sampled.starting_points is None
    assert torch.equal(sampled.x[0, 3], video.frames[3].permute(2, 0, 1).float() / 255)
    assert sampled.model(sampled.x).shape == (1, 5)


def test_run_attack_returns_the_files_8_bit_frames(clip, toy):
    from vidattack.attacks import get_attack
    from vidattack.pipeline.stages import decode, run_attack, sample

    sampled = sample(decode(clip, toy), toy, None, torch.device("cpu"))
    outcome = run_attack(sampled, get_attack("pgd-linf"), seed=2)

    assert outcome.frames.dtype == torch.uint8 and outcome.frames.shape == (8, 40, 48, 3)
    assert torch.equal(outcome.frames.permute(0, 3, 1, 2).float() / 255, outcome.result.adversarial[0])
    assert outcome.result.queries == 5 and outcome.seconds > 0


def test_write_and_verify_judge_the_file_as_written(clip, toy, tmp_path):
    from vidattack.attacks import get_attack
    from vidattack.pipeline.stages import decode, run_attack, sample, verify, write
    from vidattack.video import load_video

    video = decode(clip, toy)
    sampled = sample(video, toy, None, torch.device("cpu"))
    outcome = run_attack(sampled, get_attack("fgsm"))
    path = write(video, sampled, outcome, tmp_path / "x.adv.mp4", overwrite=False)
    clean = int(outcome.result.clean_labels[0])

    verified = verify(video, path, sampled, toy, torch.device("cpu"), clean_index=clean, target=None)

    assert torch.equal(verified.frames, outcome.frames)  # lossless: every sampled frame is in the file
    assert verified.reencoded.index == int(outcome.result.adversarial_labels[0])
    assert verified.success_after_encode == (verified.reencoded.index != clean)
    assert verified.stats == perturbation_stats(load_video(clip).frames, load_video(path).frames)


def test_render_draws_every_picture_and_reports_its_scale(clip, toy, tmp_path):
    from vidattack.pipeline.outputs import Outputs
    from vidattack.pipeline.render import RenderJob, render
    from vidattack.video import load_video

    video = load_video(clip)
    adv = video.frames.clone()
    adv[2, :5, :5] += 3
    outputs = Outputs.for_stem(tmp_path, "s")
    history = [{"step": 1.0, "loss": 2.0}, {"step": 2.0, "loss": 1.0}]

    rendered = render(
        RenderJob(
            video, adv, perturbation_stats(video.frames, adv), outputs, history, title="[bold]not markup"
        )
    )

    assert rendered.scale == 3
    assert set(rendered.paths) == {"heatmap_png", "frames_plot", "curve_plot", "heatmap_video"}
    assert all(p.stat().st_size > 0 for p in rendered.paths.values())


@pytest.mark.parametrize(
    "name", ["adv.mp4", "heatmap.mp4", "heatmap.png", "frames.png", "curve.png", "report.json"]
)
def test_check_free_covers_every_output(tmp_path, name):
    from vidattack.pipeline.outputs import Outputs

    (tmp_path / f"s.{name}").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match=name.replace(".", r"\.")):
        Outputs.for_stem(tmp_path, "s").check_free(overwrite=False)
    Outputs.for_stem(tmp_path, "s").check_free(overwrite=True)


def test_report_to_dict_keeps_the_keys_reports_always_had(clip, toy, tmp_path):
    report = perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, device="cpu")

    assert list(report) == [
        "input", "status", "attack", "model", "target", "clean", "adversarial", "reencoded", "success",
        "success_after_encode", "perturbation", "frame_predictions", "queries", "history", "video",
        "outputs", "timing", "seed", "device", "versions", "warnings", "job", "delivery", "schema_version",
    ]  # fmt: skip
    assert list(report["attack"]) == ["name", "params", "threat", "paper", "info", "white_box", "precision"]
    assert list(report["timing"]) == ["decode", "attack", "encode", "verify", "heatmaps", "total"]
    assert list(report["clean"]) == ["index", "label", "confidence", "top"]
