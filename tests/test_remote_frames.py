"""`vidattack perturb --model http://... --set frames=...`: a deployed model attacked on named frames only.

The remote model is sent every frame of the file, so the frames not named must reach it, and the
written adversarial file, exactly as they were: byte-identical once decoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_clip
from remote_support import run, serving, small_clip
from typer.testing import CliRunner

from vidattack.video import load_video

runner = CliRunner()


def changed_frames(a: Path, b: Path) -> list[int]:
    x, y = load_video(a).frames, load_video(b).frames  # (T, H, W, 3) uint8
    assert x.shape == y.shape
    return [t for t in range(x.shape[0]) if not torch.equal(x[t], y[t])]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return small_clip(tmp_path / "clip.mp4")


def test_vbad_against_a_service_changes_only_the_named_frames(c3d, clip, tmp_path):
    out = tmp_path / "out"
    with serving(c3d) as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--model", server.url, "-o", out, "-f", "jsonl", "-q",
            "--set", "frames=0,2", "--set", "max_queries=30", "--set", "population=8",
            "--set", "tentative=static", "--outputs", "adv,report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["queries"] <= 30
        assert record["model"]["sent"]["requests"] == server.requests

    assert changed_frames(clip, out / "clip.adv.mp4") == [0, 2]  # the lossless file, decoded
    assert record["attack"]["params"]["frames"] == "0,2" and record["attack"]["info"]["frames"] == [0, 2]
    assert record["attack"]["info"]["coefficients"] == 2 * 64  # NES over the named frames' patches only
    assert record["perturbation"]["perturbed_frames"] == [0, 2]


@pytest.mark.slow  # ~6 s: 60 label-only queries, each encoded, sent and decoded
def test_hsja_against_a_label_only_service_changes_only_the_named_frames(c3d, clip, tmp_path):
    # the clip with white frames 2 and 5 is another class for tiny-c3d: a start inside the named frames
    white = write_clip(tmp_path / "white.mp4", torch.full((8, 32, 32, 3), 255, dtype=torch.uint8))
    out = tmp_path / "out"
    with serving(c3d, mode="label") as server:
        result = run(
            "perturb", clip, "-a", "hsja", "--label-only", "--model", server.url, "--start", white,
            "-o", out, "-f", "jsonl", "-q", "--set", "frames=2,5", "--set", "max_queries=60",
            "--set", "init_evals=10", "--outputs", "adv,report",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(result.stdout.splitlines()[-1])
        assert record["model"]["sent"]["requests"] == server.requests

    assert record["success"] and record["queries"] <= 60
    assert changed_frames(clip, out / "clip.adv.mp4") == [2, 5]
    assert record["attack"]["info"]["dimension"] == 2 * 64


def test_frames_beyond_the_video_are_one_line_exit_1_and_no_query(c3d, clip, tmp_path):
    # known only once the video is decoded, so an error of that input (exit 1, the batch goes on), as
    # with sparse's frames
    with serving(c3d) as server:
        result = run(
            "perturb", clip, "-a", "vbad", "--model", server.url, "-o", tmp_path / "o",
            "--set", "frames=0,9", "--outputs", "report",
        )  # fmt: skip
        assert server.requests == 0

    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {clip}: expected frame numbers in [0, 7], got [9]"]
