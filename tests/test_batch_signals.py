"""Batches as separate processes: kill -9 then --resume, SIGINT/SIGTERM, two runs into one folder."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from batch_support import cli_process, clip, files_under, run, save_toy_model

FAST = ("--steps", "1", "--threads", "1", "-f", "jsonl", "-q")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_toy_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def folder(tmp_path) -> Path:
    for i in range(4):
        clip(tmp_path / "in" / f"c{i}.mp4", seed=i, frames=12)
    return tmp_path / "in"


def wait_for_report(out: Path, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.glob("*.report.json")):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "no report appeared"
        time.sleep(0.02)


def comparable(report_path: Path) -> dict:
    """A report without what differs between two runs of the same job (times, where files went)."""
    report = json.loads(report_path.read_text())
    for key in ("timing", "outputs"):
        report.pop(key)
    return report


# slow: test_batch.py's resume and leftover-temp-file tests cover it fast
@pytest.mark.slow
def test_kill_9_in_the_middle_then_resume_finishes_like_an_uninterrupted_run(model, folder, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run("perturb", folder, "--model", model, "-o", whole, *FAST).exit_code == 0

    proc = cli_process("perturb", folder, "--model", model, "-o", killed, *FAST)
    wait_for_report(killed, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(list(killed.glob("*.report.json"))) < 4, "the run finished before it was killed"

    resumed = run("perturb", folder, "--model", model, "-o", killed, *FAST, "--resume")
    from vidattack.video import load_video

    assert resumed.exit_code == 0, resumed.stderr
    assert files_under(killed) == files_under(whole)  # no temp files, no locks, nothing missing
    for name in files_under(whole):
        if name.endswith(".report.json"):
            assert comparable(killed / name) == comparable(whole / name), name
        elif name == "index.html":
            continue  # the page is drawn from the reports (compared above), timings included
        elif name.endswith((".heatmap.mp4", ".preview.mp4")):
            # a lossy x264 delivery copy: its bytes may differ between processes, its pictures do not
            a, b = load_video(killed / name).frames, load_video(whole / name).frames
            assert a.shape == b.shape and (a.float() - b.float()).abs().mean() < 1.0, name
        else:
            assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


# SIGTERM is slow: SIGINT goes through the same handler fast
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)]
)
def test_a_signal_stops_cleanly_and_says_how_to_continue(model, folder, tmp_path, sig, code):
    out = tmp_path / "out"
    proc = cli_process(
        "perturb", folder, "--model", model, "-o", out, "--steps", "40", "--threads", "1", "-f", "jsonl"
    )
    wait_for_report(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    text = stderr.decode()

    assert proc.returncode == code, text
    assert "Traceback" not in text
    assert f"interrupted by {sig.name}" in text and "run the same command again with --resume" in text
    done = [json.loads(line) for line in stdout.decode().splitlines()]
    assert done and all(r["status"] == "ok" for r in done)  # records printed whole, nothing after the stop
    reports = {p.name.removesuffix(".report.json") for p in out.glob("*.report.json")}
    assert {Path(r["input"]).stem for r in done} == reports
    # only whole output sets: every file belongs to a set with a report; nothing hidden is left
    sets = [name for name in files_under(out) if name != "index.html"]  # the page of the finished ones
    assert all(name.split(".")[0] in reports for name in sets), files_under(out)


# slow: test_batch.py's test_a_held_lock_refuses_and_leftover_temp_files_are_removed checks the lock fast
@pytest.mark.slow
def test_two_runs_into_one_folder_never_mix_their_files(model, folder, tmp_path):
    out = tmp_path / "out"
    runs = [
        cli_process("perturb", folder, "--model", model, "-o", out, *FAST, "--eps", eps, "--overwrite")
        for eps in ("1/255", "8/255")
    ]
    results = [(p.wait(timeout=300), p.communicate()[1].decode()) for p in runs]

    for code, err in results:
        assert code in (0, 1), err
        errors = [line for line in err.splitlines() if line.startswith("Error:")]
        assert all("another vidattack run is writing these outputs" in line for line in errors), err
    from vidattack.pipeline.report import perturbation_stats
    from vidattack.video import load_video

    for report_path in out.glob("*.report.json"):
        report = json.loads(report_path.read_text())
        written = load_video(out / report_path.name.replace(".report.json", ".adv.mp4")).frames
        source = load_video(report["input"]).frames
        # the video is the one the report describes: same change, within the report's budget
        assert perturbation_stats(source, written)["linf"] == pytest.approx(report["perturbation"]["linf"])
        assert report["perturbation"]["linf"] <= report["attack"]["params"]["eps"] + 1e-6
    assert not [n for n in files_under(out) if n.startswith(".")]
