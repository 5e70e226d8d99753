"""`vidattack perturb --model http://...` and `cmd:` against a real local service, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from remote_support import run, serving, small_clip
from typer.testing import CliRunner

runner = CliRunner()


def run_or_dump(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`args` run to the end; past `timeout`, a failure holding the stacks of the run (faulthandler,
    on SIGABRT) and of this process's threads, the test service's among them: a hang says where."""
    import faulthandler
    import tempfile

    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, stderr = proc.communicate()
        with tempfile.TemporaryFile("w+") as f:
            faulthandler.dump_traceback(f, all_threads=True)
            f.seek(0)
            here = f.read()
        pytest.fail(
            f"no end after {timeout} s\n--- the run:\n{stderr[-8000:]}\n--- this process:\n{here[-8000:]}"
        )
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def summary(out: Path) -> dict:
    return json.loads((out / "queries.summary.json").read_text())


def log_entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return small_clip(tmp_path / "clip.mp4")


@pytest.mark.slow  # ~11 s: the surrogate, 60 queries encoded and decoded
def test_vbad_against_a_service_counts_what_the_service_counts(c3d, clip, tmp_path):
    out = tmp_path / "out"
    with serving(c3d) as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--model", server.url, "-o", out, "-f", "jsonl", "-q",
            "--set", "max_queries=60", "--set", "population=8", "--outputs", "adv,report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["queries"] <= 60
        # every request the service received is in the summary; repeats were answered from the cache
        traffic = summary(out)
        assert traffic["requests"] == server.requests == traffic["answered"]
        assert traffic["requests"] + traffic["cache_hits"] >= record["queries"] - 1
        assert traffic["codec"].startswith("libx264rgb") and traffic["bytes_per_query"] > 0
    assert (out / "clip.adv.mp4").exists() and (out / "clip.report.json").exists()


@pytest.mark.slow  # ~11 s
def test_hsja_against_a_label_only_service(c3d, clip, tmp_path):
    out = tmp_path / "out"
    with serving(c3d, mode="label") as server:
        result = run(
            "perturb", clip, "-a", "hsja", "--label-only", "--model", server.url, "-o", out, "-f", "jsonl",
            "-q", "--set", "max_queries=80", "--set", "init_evals=10", "--outputs", "report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["success"] and record["queries"] <= 80
        assert summary(out)["requests"] == server.requests


def test_a_score_attack_on_a_label_only_service_is_refused_before_any_query(c3d, clip, tmp_path):
    with serving(c3d, mode="label") as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--label-only", "--model", server.url, "-o", tmp_path / "o"
        )
        assert result.exit_code == 2
        assert "gives labels only, and vbad needs scores: use hsja" in result.stderr
        assert server.requests == 0
        # nothing was asked, so nothing is left behind: the corrected command runs without --overwrite
        assert list((tmp_path / "o").iterdir()) == []  # the folder is checked writable up front; no log
        result = run(
            "perturb", clip, "-a", "hsja", "--label-only", "--model", server.url, "-o", tmp_path / "o",
            "-f", "jsonl", "-q", "--set", "max_queries=6", "--set", "init_evals=2", "--outputs", "report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert summary(tmp_path / "o")["requests"] == server.requests


def test_remote_options_need_a_remote_model(clip, tmp_path):
    result = run("perturb", clip, "--concurrency", "4", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "expected --model http(s)://... or cmd:..." in result.stderr


def test_a_service_answering_garbage_fails_the_input_with_one_line(c3d, clip, tmp_path):
    with serving(c3d, garbage=True) as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--model", server.url, "-o", tmp_path / "o", "-f", "jsonl"
        )
    assert result.exit_code == 1
    assert f"{server.url}: expected a JSON answer" in result.stdout + result.stderr


BRIGHTNESS = """
import json, sys
import av
with av.open(sys.argv[1]) as c:
    mean = sum(f.to_ndarray(format="gray").mean() for f in c.decode(video=0)) / c.streams.video[0].frames
with open(sys.argv[2], "a") as log:
    log.write("x\\n")
print(json.dumps({"label": "bright" if mean > 120 else "dark"}))
"""


@pytest.mark.slow  # ~0.7 s per query: a Python process each
def test_hsja_against_a_command(clip, tmp_path):
    script, calls = tmp_path / "classify.py", tmp_path / "calls.txt"
    script.write_text(BRIGHTNESS)
    out = tmp_path / "out"
    result = run(
        "perturb", clip, "-a", "hsja", "--label-only", "--model", f"cmd:{sys.executable} {script} {{}} {calls}",
        "-o", out, "-f", "jsonl", "-q", "--set", "max_queries=20", "--set", "init_evals=5", "--outputs", "report",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(calls.read_text().splitlines()) == summary(out)["requests"] <= 20


@pytest.mark.slow  # ~80 s on a shared core: two subprocess runs of the CLI
def test_kill_9_mid_attack_then_resume_spends_no_query_twice(c3d, clip, tmp_path):
    out = tmp_path / "out"
    args = [
        sys.executable, "-m", "vidattack", "perturb", str(clip), "-a", "hsja", "--label-only", "-o", str(out),
        "-f", "jsonl", "-q", "--set", "max_queries=400", "--set", "init_evals=20", "--outputs", "report",
        "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    with serving(c3d, mode="label") as server:
        args[7:7] = ["--model", server.url]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.requests < 60:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = server.requests
        assert 60 <= killed_at < 400, "the attack was not killed mid-way"
        done = run_or_dump([*args, "--resume"], env, timeout=180)
        assert done.returncode == 0, done.stderr
        traffic = summary(out)
        # the service's own count equals the report's, but for one case: the kill can fall between the
        # "sent" line (synced first, so that no request goes uncounted) and the request reaching the
        # service, and that request is counted as spent though the service never saw it
        assert server.requests <= traffic["requests"] <= server.requests + 1
        assert traffic["requests_before_resume"] >= killed_at - 1  # at most one request on the wire
    # no answered candidate was ever sent again
    answered: set[str] = set()
    for entry in log_entries(out):
        if entry["event"] == "sent":
            assert entry["key"] not in answered
        elif entry["event"] == "answer":
            answered.add(entry["key"])
    assert json.loads(done.stdout.splitlines()[-1])["queries"] <= 400


@pytest.mark.slow  # ~5 s on a quiet core; test_remote.py checks the retries without the CLI
def test_a_failing_service_gets_at_most_the_budget_and_the_report_says_what_was_sent(c3d, clip, tmp_path):
    import jsonschema

    from vidattack.pipeline.report import report_schema

    out = tmp_path / "out"
    with serving(c3d, mode="label", fail_every=3) as server:
        result = run(
            "perturb", clip, "-a", "hsja", "--label-only", "--model", server.url, "-o", out, "-f", "jsonl",
            "-q", "--set", "max_queries=24", "--set", "init_evals=4", "--outputs", "adv,report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        report = json.loads((out / "clip.report.json").read_text())
        jsonschema.Draft202012Validator(report_schema()).validate(report)
        sent = report["model"]["sent"]
        # the service's own count is the report's, failed requests included, and within the budget
        assert server.requests == sent["requests"] == summary(out)["requests"] <= 24
        assert (
            sent["failed"] == server.requests // 3 > 0
            and sent["answered"] == sent["requests"] - sent["failed"]
        )
        assert sent["codec"].startswith("libx264rgb")
        assert sent["bytes_total"] > 0 and sent["bytes_per_query"] == round(
            sent["bytes_total"] / sent["requests"], 1
        )
