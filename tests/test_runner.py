"""The one job runner (issue #22): perturb, the engine and eval run one `JobSpec` the same way; the
output files are one table, the delivery copy among them; `--eps` means the same everywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, write_clip
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.data.datasets import Item
from vidattack.delivery import parse_delivery, parse_robust_to
from vidattack.eval.grid import build_grid
from vidattack.eval.worker import WorkOptions, evaluate_item
from vidattack.pipeline import perturb_file
from vidattack.pipeline.batch import expand_inputs
from vidattack.pipeline.outputs import OUTPUT_FILES, Outputs, is_own_output
from vidattack.pipeline.report import report_schema

runner = CliRunner()
MOVE_LEFT = EXAMPLES / "move_left_1.mp4"
QUICK = ("--device", "cpu", "--quiet", "--format", "jsonl")


def perturb(*args: object) -> list[dict]:
    result = runner.invoke(app, ["perturb", *map(str, args), *QUICK])
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    frames = torch.randint(0, 256, (16, 32, 40, 3), generator=torch.Generator().manual_seed(3)).byte()
    (tmp_path / "in").mkdir()
    return write_clip(tmp_path / "in" / "c.mp4", frames)


# -- the three disagreements of the issue -------------------------------------------------------------


def test_resume_with_robust_to_after_a_plain_run_attacks_again(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (plain,) = perturb(clip, "-a", "fgsm", "-o", out, "--outputs", "adv,report")
    assert plain["attack"].get("robust_to") is None
    refused = runner.invoke(app, ["perturb", str(clip), "-a", "fgsm", "-o", str(out), "--outputs", "adv,report",
                                  "--resume", "--robust-to", "h264:crf=23", *QUICK])  # fmt: skip
    assert refused.exit_code == 1 and "reports another attack" in refused.stderr  # never the old set as done
    (robust,) = perturb(clip, "-a", "fgsm", "-o", out, "--outputs", "adv,report", "--resume", "--overwrite",
                        "--robust-to", "h264:crf=23")  # fmt: skip
    assert not robust.get("skipped") and robust["attack"]["robust_to"]["crf"] == 23
    (again,) = perturb(clip, "-a", "fgsm", "-o", out, "--outputs", "adv,report", "--resume",
                       "--robust-to", "h264:crf=23")  # fmt: skip
    assert again["skipped"] is True and again["job"] == robust["job"]


def test_eps_for_multav_means_the_same_in_perturb_eval_and_train(
    clip: Path, tmp_path: Path, c3d, monkeypatch
) -> None:
    ratio = 1 + 4 / 255  # the documented rule: an additive e < 1 is the ratio bound 1 + e
    (report,) = perturb(clip, "-a", "multav-linf", "--eps", "4/255", "--steps", "1", "-o", tmp_path / "p",
                        "--outputs", "report")  # fmt: skip
    assert report["attack"]["params"]["eps_m"] == pytest.approx(ratio)
    (cfg,) = build_grid(["multav-linf"], c3d, eps=["4/255"])
    assert cfg.params["eps_m"] == pytest.approx(ratio)

    seen = {}

    def capture(config, **_):  # the training itself is not what is tested
        seen["eps"] = config.eps
        raise SystemExit(0)

    monkeypatch.setattr("vidattack.train.train_model", capture)
    result = runner.invoke(app, ["train", "--adversarial", "multav-linf", "--eps", "4/255", "--out",
                                 str(tmp_path / "m.safetensors"), "--data", "synthetic:1"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert seen["eps"] == pytest.approx(ratio)


def test_robust_to_alone_makes_a_check_encode_in_perturb_and_in_eval(c3d, tmp_path: Path) -> None:
    spec = parse_robust_to("h264:crf=23")
    report = perturb_file(
        MOVE_LEFT, "fgsm", model=c3d, out_dir=tmp_path, device="cpu", heatmaps=False, robust_to=spec
    )
    assert report["delivery"]["kept"] is False and report["delivery"]["crf"] == 23
    (cfg,) = build_grid(["fgsm"], c3d, robust_to=spec)
    item = Item("move_left_1", c3d.labels.index("move_left"), path=MOVE_LEFT)
    (record,) = evaluate_item(c3d, item, [cfg], WorkOptions(device="cpu"))
    assert record["status"] == "ok" and record["attacked"]
    assert isinstance(record["delivered"], int) and record["success_after_delivery"] is not None
    assert record["encodes"] >= 1


# -- the delivery copy is an output kind ---------------------------------------------------------------


def test_a_failing_later_stage_removes_the_delivery_copy(clip: Path, tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("render failed")

    monkeypatch.setattr("vidattack.pipeline.render.render", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="render failed"):
        perturb_file(
            clip, "fgsm", model="tiny-c3d", out_dir=out, device="cpu", delivery=parse_delivery("h264")
        )
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []


def test_resume_redoes_a_set_whose_delivery_copy_outlived_its_report(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = (clip, "-a", "fgsm", "-o", out, "--outputs", "adv,report", "--delivery", "h264")
    (first,) = perturb(*args)
    (out / "c.report.json").unlink()  # as if killed after the delivery encode
    (redone,) = perturb(*args, "--resume")
    assert not redone.get("skipped") and (out / "c.delivery.mp4").exists()
    (skipped,) = perturb(*args, "--resume")
    assert skipped["skipped"] is True and skipped["outputs"]["delivery"] == first["outputs"]["delivery"]


def test_a_folder_input_skips_delivery_copies(clip: Path) -> None:
    folder = clip.parent
    shutil.copy(clip, folder / "c.delivery.mp4")
    shutil.copy(clip, folder / "c.delivery.webm")
    items = expand_inputs([str(folder)], skip_own_outputs=True)
    assert [i.path.name for i in items] == ["c.mp4"]
    assert is_own_output(Path("x.delivery.webm")) and not is_own_output(Path("x.mp4"))


# -- the table is what every reader reads ---------------------------------------------------------------


def test_the_report_schema_lists_every_role_of_the_table() -> None:
    roles = set(report_schema()["properties"]["outputs"]["properties"])
    assert roles == {f.role for f in OUTPUT_FILES}


def test_outputs_name_each_role_from_the_table(tmp_path: Path) -> None:
    outputs = Outputs.for_stem(tmp_path, "s").with_kind("delivery", suffix=("delivery", ".delivery.webm"))
    assert outputs.adversarial == tmp_path / "s.adv.mp4" and outputs.delivery == tmp_path / "s.delivery.webm"
    assert outputs.chosen()[-1] == outputs.report  # the report last: written last
    assert outputs.delivery in outputs.required() and tmp_path / "s.curve.png" not in outputs.required()


def test_keys_hash_a_file_parameter_by_its_bytes_not_its_path(c3d, tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "start.mp4", tmp_path / "b" / "start.mp4"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(MOVE_LEFT, p)
    keys = [build_grid(["vbad"], c3d, settings={"target_video": str(p)})[0].key for p in (a, b)]
    assert keys[0] == keys[1]
    other = tmp_path / "other.mp4"
    shutil.copy(EXAMPLES / "move_right_1.mp4", other)
    assert build_grid(["vbad"], c3d, settings={"target_video": str(other)})[0].key != keys[0]


def test_delivery_is_named_for_the_set_when_the_lossless_file_is_not_kept(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (r,) = perturb(clip, "-a", "fgsm", "-o", out, "--outputs", "report", "--delivery", "h264")
    # before the table, the copy was named after the hidden temp file the lossless video went to
    assert r["outputs"]["delivery"] == r["delivery"]["path"] == str(out / "c.delivery.mp4")
    assert sorted(p.name for p in out.iterdir()) == ["c.delivery.mp4", "c.report.json"]


def test_committed_vbad_configurations_hash_to_their_keys_from_this_checkout(monkeypatch) -> None:
    from vidattack.eval.grid import Config

    root = EXAMPLES.parent
    monkeypatch.chdir(root)  # the committed file parameters are relative to the repository
    folders = sorted(root.glob("benchmarks/results/vbad-eval*/*/targeted"))
    assert folders
    for folder in folders:
        configs = json.loads((folder / "configs.json").read_text())["configs"]
        assert all(Config.from_dict(d).key == d["key"] for d in configs), folder
        keys = {d["key"] for d in configs}
        records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line]
        assert records and all(r["key"] in keys for r in records), folder


def test_eval_records_what_perturb_reports_for_the_same_job(c3d, tmp_path: Path) -> None:
    from vidattack.eval.worker import video_seed

    (cfg,) = build_grid(["pgd-linf"], c3d, eps=["4/255"], steps="2")
    item = Item("move_left_1", c3d.labels.index("move_left"), path=MOVE_LEFT)
    (record,) = evaluate_item(c3d, item, [cfg], WorkOptions(device="cpu"))
    seed = video_seed(cfg.seed, item.id)  # eval seeds each video apart; perturb takes the seed given
    report = perturb_file(MOVE_LEFT, cfg.spec.attack, model=c3d, out_dir=tmp_path, device="cpu", seed=seed)
    assert (record["adversarial"], record["reencoded"]) == (
        report["adversarial"]["index"],
        report["reencoded"]["index"],
    )
    assert record["linf"] == report["perturbation"]["linf"] * 255 and record["queries"] == report["queries"]
