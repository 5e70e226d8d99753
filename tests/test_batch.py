"""Batches that never lose work: output names, --outputs, --overwrite, locks, --resume, stdin, usage errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from batch_support import clip, files_under, records, run, save_toy_model

FAST = ("--steps", "1", "--threads", "1", "-f", "jsonl")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_toy_model(tmp_path_factory.mktemp("model"))


def perturb(model: Path, *args: object, input: str | bytes | None = None):
    return run("perturb", *args, "--model", model, *FAST, input=input)


def test_names_keep_every_dot_and_subfolders_are_mirrored(model, tmp_path):
    for i, rel in enumerate(("clip.2020.mp4", "clip.2021.mp4", "sub/dir/clip.2020.mp4")):
        clip(tmp_path / "in" / rel, seed=i)

    result = perturb(model, tmp_path / "in", "-o", tmp_path / "out", "--outputs", "adv,report")

    assert result.exit_code == 0, result.stderr
    assert files_under(tmp_path / "out") == [
        "clip.2020.adv.mp4", "clip.2020.report.json", "clip.2021.adv.mp4", "clip.2021.report.json",
        "sub/dir/clip.2020.adv.mp4", "sub/dir/clip.2020.report.json",
    ]  # fmt: skip


def test_odd_names_get_every_output(model, tmp_path):
    folder = tmp_path / "m["
    names = ["[bold]x.mp4", "q'\"uote.mp4", "ünï 视频.mp4", "new\nline.mp4"]
    for i, n in enumerate(names):
        clip(folder / n, seed=i)
    clip(Path(os.fsdecode(os.fsencode(folder) + b"/bad_\xff\xfe.mp4")), seed=9)

    result = perturb(model, folder, "-o", tmp_path / "out")

    assert result.exit_code == 0, result.stderr
    assert len(records(result.stdout)) == 5 and len(list((tmp_path / "out").glob("*.heatmap.png"))) == 5


def test_two_inputs_with_one_name_are_a_usage_error_before_any_work(model, tmp_path):
    a, b = clip(tmp_path / "a" / "clip.mp4"), clip(tmp_path / "b" / "clip.mp4", seed=1)

    result = perturb(model, a, b, "-o", tmp_path / "out")

    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and f"{a} and {b} would both write" in result.stderr
    assert files_under(tmp_path / "out") == []


def test_a_name_template_lets_two_attacks_share_one_folder(model, tmp_path):
    src = clip(tmp_path / "clip.mp4")
    for attack in ("pgd-linf", "fgsm"):
        result = run(
            "perturb", src, "-a", attack, "--model", model, "-o", tmp_path / "out", "--threads", "1",
            "--name", "{stem}.{attack}.{eps255}", *(("--steps", "1") if attack != "fgsm" else ()),
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
    names = files_under(tmp_path / "out")
    assert "clip.pgd-linf.4.report.json" in names and "clip.fgsm.4.report.json" in names


def test_stdin_keeps_trailing_spaces_and_never_attacks_our_outputs(model, tmp_path):
    spaced = clip(tmp_path / "in" / "trailing .mp4")
    first = perturb(model, spaced, "-o", tmp_path / "in" / "out", "--outputs", "adv,report")
    assert first.exit_code == 0, first.stderr
    elsewhere = clip(tmp_path / "old.adv.mp4", seed=3)  # named like an output of ours: left out too
    listing = "".join(f"{p}\n" for p in [*sorted((tmp_path / "in").rglob("*.mp4")), elsewhere])

    result = perturb(model, "-", "-o", tmp_path / "in" / "out", "--resume", input=listing)

    assert result.exit_code == 0, result.stderr
    assert [r["input"] for r in records(result.stdout)] == [str(spaced)]


def test_null_separated_stdin_takes_names_with_newlines(model, tmp_path):
    odd = clip(tmp_path / "new\nline.mp4")
    plain = clip(tmp_path / "plain.mp4", seed=1)
    listing = os.fsencode(odd) + b"\0" + os.fsencode(plain) + b"\0"

    result = perturb(model, "-", "-0", "-o", tmp_path / "out", "--outputs", "report", input=listing)

    assert result.exit_code == 0, result.stderr
    assert [r["input"] for r in records(result.stdout)] == [str(odd), str(plain)]
    assert files_under(tmp_path / "out") == ["new\nline.report.json", "plain.report.json"]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        ("adv,report", ["c.adv.mp4", "c.report.json"]),
        ("heatmaps,report", ["c.heatmap.mp4", "c.heatmap.png", "c.report.json"]),
        ("plots", ["c.frames.png"]),
    ],
)
def test_outputs_chooses_what_is_written(model, tmp_path, kinds, expected):
    result = perturb(model, clip(tmp_path / "c.mp4"), "-o", tmp_path / "out", "--outputs", kinds)

    assert result.exit_code == 0, result.stderr
    assert files_under(tmp_path / "out") == expected  # no scratch files, no lock left behind
    (record,) = records(result.stdout)
    assert sorted(Path(p).name for p in record["outputs"].values()) == sorted(
        n for n in expected if n != "c.report.json" or "report" in kinds
    )


def test_every_output_needs_overwrite_even_a_plot(model, tmp_path):
    src = clip(tmp_path / "c.mp4")
    (tmp_path / "out").mkdir()
    plot = tmp_path / "out" / "c.frames.png"
    plot.write_bytes(b"mine")

    refused = perturb(model, src, "-o", tmp_path / "out")

    assert refused.exit_code == 1 and f"{plot} exists (use --overwrite" in refused.stderr
    assert plot.read_bytes() == b"mine" and files_under(tmp_path / "out") == ["c.frames.png"]
    assert perturb(model, src, "-o", tmp_path / "out", "--overwrite").exit_code == 0
    assert plot.read_bytes() != b"mine"


def test_resume_skips_finished_inputs_and_redoes_unfinished_ones(model, tmp_path):
    for i in range(2):
        clip(tmp_path / "in" / f"c{i}.mp4", seed=i)
    out = tmp_path / "out"
    args = (tmp_path / "in", "-o", out, "--outputs", "adv,report")
    assert perturb(model, *args).exit_code == 0
    (out / "c1.report.json").unlink()  # as if killed between the video and its report
    kept = (out / "c0.report.json").stat().st_mtime_ns

    resumed = perturb(model, *args, "--resume")

    assert resumed.exit_code == 0, resumed.stderr
    assert [r.get("skipped", False) for r in records(resumed.stdout)] == [True, False]
    assert "1 of 2 inputs were already done (--resume) and skipped" in resumed.stderr
    assert (out / "c0.report.json").stat().st_mtime_ns == kept and (out / "c1.report.json").exists()

    again = perturb(model, *args, "--resume")

    assert again.exit_code == 0
    assert [r["skipped"] for r in records(again.stdout)] == [True, True]
    assert "all 2 inputs were already done (--resume); nothing was attacked" in again.stderr


def test_resume_refuses_the_report_of_another_job(model, tmp_path):
    src, out = clip(tmp_path / "c.mp4"), tmp_path / "out"
    assert perturb(model, src, "-o", out, "--eps", "1/255", "--outputs", "report").exit_code == 0

    other = perturb(model, src, "-o", out, "--eps", "2/255", "--outputs", "report", "--resume")

    assert other.exit_code == 1 and "reports another attack, model, seed or input" in other.stderr
    replaced = perturb(
        model, src, "-o", out, "--eps", "2/255", "--outputs", "report", "--resume", "--overwrite"
    )
    assert replaced.exit_code == 0
    assert json.loads((out / "c.report.json").read_text())["attack"]["params"]["eps"] == pytest.approx(
        2 / 255
    )


def test_a_held_lock_refuses_and_leftover_temp_files_are_removed(model, tmp_path):
    from vidattack.pipeline.locks import acquire, release

    src, out = clip(tmp_path / "c.mp4"), tmp_path / "out"
    out.mkdir()
    leftover = out / ".c.adv.mp4.tmp-0123abcd.mp4"  # what a SIGKILL during the encode leaves
    leftover.write_bytes(b"half a video")
    other = out / ".c.2020.adv.mp4.tmp-0123abcd.mp4"  # another set's: not ours to remove
    other.write_bytes(b"x")
    fd = acquire(out / ".c.lock")
    try:
        busy = perturb(model, src, "-o", out)
    finally:
        release(out / ".c.lock", fd)

    assert busy.exit_code == 1
    assert "another vidattack run is writing these outputs" in busy.stderr and str(os.getpid()) in busy.stderr
    assert leftover.exists()  # untouched while the other run holds the set
    done = perturb(model, src, "-o", out, "--outputs", "adv,report")
    assert done.exit_code == 0, done.stderr
    assert files_under(out) == [".c.2020.adv.mp4.tmp-0123abcd.mp4", "c.adv.mp4", "c.report.json"]


def test_a_job_that_fails_after_writing_leaves_no_partial_outputs(model, tmp_path, monkeypatch):
    import vidattack.pipeline.render
    from vidattack.errors import VidattackError

    def broken(*args, **kwargs):
        raise VidattackError("the renderer broke")

    monkeypatch.setattr(vidattack.pipeline.render, "render", broken)

    result = perturb(model, clip(tmp_path / "c.mp4"), "-o", tmp_path / "out")

    assert result.exit_code == 1 and "the renderer broke" in result.stderr
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("where", ["file", "/proc/x/out", "/proc/x"])
def test_out_must_be_a_folder_we_can_write(model, tmp_path, where):
    out = tmp_path / "a-file" if where == "file" else Path(where)
    if where == "file":
        out.write_text("")
    result = perturb(model, clip(tmp_path / "c.mp4"), "-o", out)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(out) in result.stderr


def test_apply_of_a_missing_file_is_one_usage_error(model, tmp_path):
    inputs = [clip(tmp_path / f"c{i}.mp4", seed=i) for i in range(2)]
    result = perturb(model, *inputs, "--apply", tmp_path / "none.safetensors", "-o", tmp_path / "out")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1


def test_outputs_are_created_with_the_umask_mode(model, tmp_path):
    old = os.umask(0o027)
    try:
        result = perturb(model, clip(tmp_path / "c.mp4"), "-o", tmp_path / "out")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert set(modes.values()) == {0o640}, modes


def test_threads_are_bounded():
    from vidattack.errors import BadParameterError
    from vidattack.pipeline import max_threads, set_cpu_threads

    assert max_threads() >= 256
    with pytest.raises(BadParameterError, match="expected --threads between 0 and"):
        set_cpu_threads(100_000)
