"""The command line: exit codes, one-line errors, data on stdout, batches that survive bad files."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from conftest import toy_view, write_clip
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.pipeline.outputs import KINDS_HELP

runner = CliRunner()


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """The toy model as a TorchScript file with a JSON sidecar: a real `--model PATH`."""
    folder = tmp_path_factory.mktemp("model")
    view = toy_view()
    path = folder / "toy.ts"
    torch.jit.trace(view.net, torch.rand(1, 3, 8, 40, 48)).save(str(path))
    sidecar = {"preprocess": view.preprocess.to_dict(), "labels": view.labels}
    (folder / "toy.ts.json").write_text(json.dumps(sidecar))
    return str(path)


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        g = torch.Generator().manual_seed(i)
        write_clip(
            folder / f"clip{i}.mp4", torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
        )
    return folder


def run(*args, input=None):
    result = runner.invoke(app, [str(a) for a in args], input=input)
    assert "Traceback" not in (result.stdout + result.stderr), result.stderr
    return result


def test_every_command_has_help():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("perturb", "predict", "attacks", "models"):
        assert command in result.stdout
        sub = run(command, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.stdout
    for command in app.registered_commands:
        assert (command.callback.__doc__ or "").strip(), f"{command.callback.__name__} has no help text"


def test_perturb_writes_jsonl_to_stdout_and_outputs_to_the_folder(videos, toy_model, tmp_path):
    out = tmp_path / "out"
    result = run(
        "perturb", videos / "clip0.mp4", "--model", toy_model, "--out", out, "--eps", "8/255", "--steps", "2"
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == "ok"
    assert record["attack"]["params"]["eps"] == pytest.approx(8 / 255)
    assert record["attack"]["params"]["steps"] == 2
    assert (out / "clip0.report.json").exists() and (out / "clip0.adv.mp4").exists()


def test_a_bad_file_in_a_folder_does_not_stop_the_batch(videos, toy_model, tmp_path):
    (videos / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video")
    result = run(
        "perturb", videos, "--model", toy_model, "--out", tmp_path / "out", "--steps", "1", "-f", "jsonl"
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["status"] for r in records) == ["error", "ok", "ok"]
    broken = next(r for r in records if r["status"] == "error")
    assert broken["input"].endswith("broken.mp4") and broken["error"]
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "broken.mp4" in error_lines[0]


def test_paths_from_stdin_and_json_format(videos, toy_model, tmp_path):
    listing = f"{videos / 'clip0.mp4'}\n{videos / 'clip1.mp4'}\n"
    result = run(
        "perturb",
        "-",
        "--model",
        toy_model,
        "--out",
        tmp_path / "o",
        "--steps",
        "1",
        "-f",
        "json",
        input=listing,
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["status"] for r in doc["results"]] == ["ok", "ok"]


def test_existing_outputs_need_overwrite(videos, toy_model, tmp_path):
    args = ["perturb", videos / "clip0.mp4", "--model", toy_model, "--out", tmp_path, "--steps", "1"]
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 1 and "use --overwrite" in again.stderr
    assert run(*args, "--overwrite").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attack", "pgd-inf"], "did you mean pgd-linf"),
        (["--eps", "-1"], "eps: expected >= 0"),
        (["--eps", "nan"], "eps: expected a number, got NaN"),
        (["--eps", "4/0"], "eps: expected a number or a fraction"),
        (["--set", "epz=1"], "unknown parameter 'epz'"),
        (["--set", "eps"], "expected --set KEY=VALUE"),
        (["--target", "giraffe"], "expected a label of model"),
        (["--model", "nonexistent.pth"], "nonexistent.pth"),
        (["--threads", "-1"], "expected --threads between 0 and"),
        (["--threads", "100000"], "expected --threads between 0 and"),
        (["--seed", "1180591620717411303424"], "expected --seed between 0 and 18446744073709551615"),
        (["--seed", "-1"], "expected --seed between 0 and"),
        (["--name", "{stem}.{colour}"], "got {colour}"),
        (["--name", "{stem:q}"], "expected a --name template"),
        (["--name", "{}"], "got {} in"),
        (["--outputs", "adv,pictures"], f"expected --outputs from {KINDS_HELP} (or all), got pictures"),
        (["--outputs", "adv", "--resume"], "expected --outputs with report for --resume"),
        (["--max-memory", "lots"], "expected --max-memory as a size"),
    ],
)
def test_usage_errors_exit_2_with_one_line(videos, toy_model, tmp_path, args, message):
    model = [] if "--model" in args else ["--model", toy_model]
    result = run("perturb", videos / "clip0.mp4", *model, "--out", tmp_path, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert not list(tmp_path.glob("*.report.json"))


def audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = 16000, i * 1024, Fraction(1, 16000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_unreadable_inputs_fail_per_item_with_exit_1(toy_model, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    sound = audio_only(tmp_path / "sound.mp4")
    result = run(
        "perturb", tmp_path / "missing.mp4", empty, sound, "--model", toy_model, "--out", tmp_path / "o"
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3
    assert "no such file" in errors[0]
    assert "no video stream" in errors[2]


def test_predict_prints_labels(videos, toy_model):
    result = run("predict", videos / "clip1.mp4", "--model", toy_model, "--top-k", "2", "-f", "jsonl")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["label"].startswith("class") and len(record["top"]) == 2


def test_attacks_and_models_list_the_registry():
    from vidattack.attacks import attack_names

    listed = json.loads(run("attacks", "--format", "json").stdout)
    assert [a["name"] for a in listed["attacks"]] == attack_names()
    assert all(a["params"] is not None and a["paper"] for a in listed["attacks"])
    models = json.loads(run("models", "--format", "json").stdout)
    names = {m["name"]: m["kind"] for m in models["models"]}
    assert names["tiny-c3d"] == "bundled" and names["r3d_18"] == "architecture"
    table = run("attacks", "--format", "table")
    assert table.exit_code == 0 and "pgd-linf" in table.stdout


def test_version():
    from vidattack import __version__

    result = run("--version")
    assert result.exit_code == 0 and result.stdout == f"vidattack {__version__}\n"


def test_attacks_name_shows_one_attack_with_defaults_as_written():
    one = json.loads(run("attacks", "pgd-linf", "--format", "json").stdout)
    assert [a["name"] for a in one["attacks"]] == ["pgd-linf"]
    eps = next(p for p in one["attacks"][0]["params"] if p["name"] == "eps")
    assert eps["default_text"]
    table = run("attacks", "pgd-linf", "--format", "table")
    assert table.exit_code == 0 and "pgd-linf" in table.stdout and "multav-linf" not in table.stdout
    unknown = run("attacks", "pgd-inf")
    assert unknown.exit_code == 2 and "did you mean pgd-linf" in unknown.stderr


def test_attacks_jsonl_is_one_line_per_attack():
    from vidattack.attacks import attack_names

    lines = run("attacks", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line)["name"] for line in lines] == attack_names()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("BadParameterError", 2),
        ("UnknownAttackError", 2),
        ("BadCheckpointError", 2),
        ("OutputExistsError", 1),
    ],
)
def test_exit_codes_come_from_the_error_classes(monkeypatch, error, code):
    import vidattack.errors
    import vidattack.models

    cls = getattr(vidattack.errors, error)
    assert cls.exit_code == code

    def refuse(*args, **kwargs):
        raise cls("refused [bold]as written[/]")

    monkeypatch.setattr(vidattack.models, "load_model", refuse)
    for command in (["predict", "x.mp4"], ["perturb", "x.mp4"]):
        result = run(*command)
        assert result.exit_code == code, (command, result.stderr)
        assert result.stderr == "Error: refused [bold]as written[/]\n"


def test_a_refused_checkpoint_exits_the_same_from_every_command(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    folder = tmp_path / "train"
    folder.mkdir()
    write_clip(folder / "a.mp4", torch.zeros(8, 40, 48, 3, dtype=torch.uint8))
    codes = {
        run("perturb", folder / "a.mp4", "--model", bad, "--out", tmp_path / "o").exit_code,
        run("predict", folder / "a.mp4", "--model", bad).exit_code,
        run("universal", folder, "--out", tmp_path / "u.safetensors", "--model", bad).exit_code,
    }
    assert codes == {2}


def test_names_and_messages_print_literally_not_as_markup(toy_model, tmp_path):
    folder = tmp_path / "m["
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    good = write_clip(
        folder / "[bold]good.mp4", torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    )
    (folder / "]x.mp4").write_bytes(b"junk")
    args = ["perturb", folder / "]x.mp4", good, "--model", toy_model, "--out", tmp_path / "o", "--steps", "1"]

    result = run(*args, "-f", "jsonl")

    assert result.exit_code == 1
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["error", "ok"]
    bad = str(folder / "]x.mp4")  # the folder "m[" and file "]x.mp4"
    assert result.stderr.startswith(f"Error: {bad} is not a readable video")
    assert result.stderr.count("]x.mp4") == 1  # the path once
    table = run(*args, "-f", "table", "--overwrite")
    assert "[bold]good" in table.stdout.replace("│", "").replace(" ", "").replace("\n", "")


def test_apply_takes_no_attack_parameters_and_a_missing_file_is_a_usage_error(videos, toy_model, tmp_path):
    missing = run("perturb", videos / "clip0.mp4", "--model", toy_model, "--apply", tmp_path / "none")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    with_eps = run("perturb", videos / "clip0.mp4", "--apply", tmp_path / "none", "--eps", "1/255")
    assert with_eps.exit_code == 2 and "--apply" in with_eps.stderr
