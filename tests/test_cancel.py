"""SIGINT/SIGTERM at every stage (issue #27): one process-wide flag (`vidattack.cancel`) that the
signal handlers set and every frame loop checks, so work in background threads stops within a frame,
its partial files are removed and the command exits 128 + the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from batch_support import ROOT, cli_process, clip, files_under

from vidattack import cancel
from vidattack.video import load_video, save_video


@pytest.fixture(autouse=True)
def _no_stop_left_over():
    cancel.clear()
    yield
    cancel.clear()


def test_check_raises_once_a_stop_is_requested() -> None:
    cancel.check()  # nothing asked: no-op
    cancel.request(signal.SIGTERM)
    cancel.request(signal.SIGINT)  # the first signal counts
    with pytest.raises(cancel.Cancelled) as e:
        cancel.check()
    assert (e.value.name, e.value.exit_code) == ("SIGTERM", 143)


def test_an_encode_stops_at_the_next_frame_and_leaves_no_temp_file(tmp_path: Path) -> None:
    video = load_video(clip(tmp_path / "in.mp4", frames=8))
    cancel.request(signal.SIGTERM)
    with pytest.raises(cancel.Cancelled):
        save_video(video, tmp_path / "out.mp4")
    assert files_under(tmp_path) == ["in.mp4"]


def test_a_decode_stops_at_the_next_frame(tmp_path: Path) -> None:
    path = clip(tmp_path / "in.mp4", frames=8)
    cancel.request(signal.SIGINT)
    with pytest.raises(cancel.Cancelled):
        load_video(path)


def long_clip(path: Path, frames: int) -> Path:
    """A long low-motion clip: quick to write, slow enough to encode and render for a signal to land."""
    from conftest import write_clip

    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (1, 120, 160, 3), generator=g, dtype=torch.uint8)
    return write_clip(path, base.expand(frames, -1, -1, -1).contiguous())


def signal_when(proc, ready, sig: signal.Signals, timeout: float = 120) -> tuple[float, str]:
    """Send `sig` once `ready()` holds; return the seconds the process then took to exit, and its
    stderr."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the stage never began"
        time.sleep(0.01)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    return time.monotonic() - sent, stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "sig"), [("adv", signal.SIGTERM), ("heatmap", signal.SIGINT)])
def test_perturb_stops_within_5_s_while_writing_or_rendering(tmp_path: Path, stage: str, sig) -> None:
    video = long_clip(tmp_path / "long.mp4", 600)
    out = tmp_path / "out"
    proc = cli_process(
        "perturb", video, "-o", out, "--steps", "1", "--threads", "1", "--outputs", "adv,report,heatmaps"
    )

    def writing() -> bool:  # the stage's hidden temp file exists: it is under way
        return any(p.name.startswith(f".long.{stage}.mp4.tmp-") for p in out.glob(".*"))

    seconds, stderr = signal_when(proc, writing, sig)

    assert proc.returncode == 128 + sig, stderr
    assert seconds < 5, f"took {seconds:.1f} s to stop"
    assert files_under(out) == []  # partial outputs removed, lock included
    assert f"interrupted by {sig.name}" in stderr and "again with --resume" in stderr


@pytest.mark.slow
def test_eval_removes_its_temp_folder_and_lock_on_sigterm(tmp_path: Path) -> None:
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(temp), PYTHONPATH=str(ROOT))
    args = ["eval", "synthetic:2", "--out", str(out), "--steps", "30", "--threads", "1", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "vidattack", *args], env=env, stderr=subprocess.PIPE)

    seconds, stderr = signal_when(proc, lambda: any(temp.glob("vidattack-eval-*")), signal.SIGTERM)

    assert proc.returncode == 143 and seconds < 5, stderr
    assert "interrupted by SIGTERM; finished records are kept; run the same command again" in stderr
    assert list(temp.iterdir()) == []  # the eval's temp folder, removed
    assert sorted(p.name for p in out.iterdir()) == ["configs.json", "results.jsonl"]  # no lock left
