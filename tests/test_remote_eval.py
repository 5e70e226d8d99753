"""`vidattack eval --model http://...`: a data set attacked through a deployed model's answers, every
query logged in the eval folder, a rerun spending none twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from remote_support import run, serving, small_clip

from vidattack.video import load_video


@pytest.fixture
def dataset(c3d, tmp_path: Path) -> tuple[Path, Path]:
    """A manifest of two short clips labelled as the served model calls them, and its --labels file."""
    rows = ["path,label"]
    for seed in range(2):
        clip = small_clip(tmp_path / f"clip{seed}.mp4", seed=seed)
        x = load_video(clip).frames.permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
        rows.append(f"{clip.name},{c3d.labels[int(c3d.bind(c3d.plan(8))(x).argmax())]}")
    manifest = tmp_path / "data.csv"
    manifest.write_text("\n".join(rows) + "\n")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(c3d.labels) + "\n")
    return manifest, labels


def evaluate(server, dataset: tuple[Path, Path], out: Path, *extra: object):
    manifest, labels = dataset
    return run(
        "eval", manifest, "-a", "hsja", "--model", server.url, "--labels", labels, "--label-only", "-o", out,
        "--set", "max_queries=40", "--set", "init_evals=4", "-f", "jsonl", "-q", *extra,
    )  # fmt: skip


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow  # ~20 s at load 4: two clips, 40 label-only queries each, encoded and decoded
def test_hsja_over_a_data_set_against_a_label_only_service_counts_what_the_service_counts(
    c3d, dataset, tmp_path
):
    out = tmp_path / "eval"
    with serving(c3d, mode="label") as server:
        result = evaluate(server, dataset, out)
        assert result.exit_code == 0, result.stderr
        summary = json.loads((out / "queries.summary.json").read_text())
        assert summary["requests"] == server.requests > 0
    done = records(out)
    assert [r["status"] for r in done] == ["ok"] * 2
    assert all(r["queries"] <= 40 for r in done) and any(r["success"] for r in done)
    # every request is in the log, each answered once: the service's count, independently
    sent = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "sent" for e in sent) == server.requests


@pytest.mark.slow  # ~20 s at load 4: two clips, 40 label-only queries each, encoded and decoded
def test_a_rerun_after_an_interrupted_video_spends_no_query_twice(c3d, dataset, tmp_path):
    out = tmp_path / "eval"
    with serving(c3d, mode="label") as server:
        assert evaluate(server, dataset, out).exit_code == 0
        first = records(out)
        before = server.requests
        # the last video's record lost, as if the run had been killed before writing it
        lines = (out / "results.jsonl").read_text().splitlines()
        (out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n")
        result = evaluate(server, dataset, out)
        assert result.exit_code == 0, result.stderr
        assert server.requests == before  # its attack ran again on the answers in the log
    again = records(out)
    assert again[-1]["queries"] == first[-1]["queries"] and again[-1]["success"] == first[-1]["success"]
    assert json.loads((out / "queries.summary.json").read_text())["replayed_from_log"] > 0


def test_a_score_attack_on_a_label_only_service_is_refused_before_any_query(c3d, dataset, tmp_path):
    manifest, labels = dataset
    with serving(c3d, mode="label") as server:
        result = run(
            "eval", manifest, "-a", "vbad", "--model", server.url, "--labels", labels, "--label-only",
            "-o", tmp_path / "o",
        )  # fmt: skip
        assert result.exit_code == 2 and server.requests == 0
    assert "gives labels only, and vbad needs scores: use hsja" in result.stderr


def test_ray_workers_are_refused_one_budget_one_log(dataset, tmp_path):
    manifest, labels = dataset
    result = run(
        "eval", manifest, "-a", "hsja", "--model", "http://127.0.0.1:9/classify", "--labels", labels,
        "--executor", "ray", "-o", tmp_path / "o",
    )  # fmt: skip
    assert result.exit_code == 2 and "use --executor local" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_deployed_model_needs_the_names_it_answers(dataset, tmp_path):
    result = run(
        "eval", dataset[0], "-a", "hsja", "--model", "http://127.0.0.1:9/classify", "-o", tmp_path / "o"
    )
    assert result.exit_code == 2 and "pass --labels FILE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_remote_options_need_a_remote_model(dataset, tmp_path):
    result = run("eval", dataset[0], "--label-only", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "expected --model http(s)://... or cmd:..." in result.stderr


@pytest.mark.slow  # ~10 s at load 4: 16 queries through a local h264 encode
def test_robust_to_keeps_each_video_within_its_budget(c3d, dataset, tmp_path):
    manifest, labels = dataset
    one = tmp_path / "one.csv"  # one video, so that every request the service counts is its
    one.write_text("\n".join(manifest.read_text().splitlines()[::2]) + "\n")
    out = tmp_path / "eval"
    with serving(c3d) as server:
        result = run(
            "eval", one, "-a", "vbad", "--model", server.url, "--labels", labels, "-o", out,
            "--set", "max_queries=16", "--set", "population=4", "--robust-to", "h264:crf=18-28", "-q",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert json.loads((out / "queries.summary.json").read_text())["requests"] == server.requests
    [done] = records(out)
    # eval's own clean request (lossless) is not the attack's first query (an encoded draw): it comes
    # out of the budget, and the service sees at most max_queries requests for the video
    assert done["status"] == "ok" and done["queries"] <= 15
    assert server.requests <= 16


def test_several_eot_draws_per_query_are_refused_before_any_request(c3d, dataset, tmp_path):
    manifest, labels = dataset
    with serving(c3d) as server:
        result = run(
            "eval", manifest, "-a", "vbad", "--model", server.url, "--labels", labels, "-o", tmp_path / "o",
            "--robust-to", "h264:crf=18-28,eot=2",
        )  # fmt: skip
        assert result.exit_code == 2 and server.requests == 0
    assert "use eot=1" in result.stderr and len(result.stderr.strip().splitlines()) == 1
