"""Temporary folders of runs that were killed outright (kill -9) are removed by the next run, and
only those (issue #27): `vidattack.tempdirs` names each folder after its owner process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from batch_support import ROOT
from test_cancel import signal_when
from typer.testing import CliRunner

from vidattack import tempdirs
from vidattack.cli import app


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def folder(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    (path / "clean.mp4").write_bytes(b"partial")
    return path


def test_a_folder_whose_owner_is_gone_is_swept_a_live_ones_is_kept(tmp_path: Path) -> None:
    orphan = folder(tmp_path, f"vidattack-eval-p{dead_pid()}s1234-abc_12")
    live = Path(tempfile.mkdtemp(prefix=tempdirs.prefix("eval"), dir=tmp_path))  # this process's
    unrelated = folder(tmp_path, f"someone-else-p{dead_pid()}s1234-abc")

    assert tempdirs.sweep_orphans(tmp_path) == [orphan]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, unrelated.name])


@pytest.mark.skipif(tempdirs.start_ticks(os.getpid()) is None, reason="needs /proc")
def test_a_new_process_given_the_dead_owners_pid_does_not_keep_its_folder(tmp_path: Path) -> None:
    reused = folder(tmp_path, f"vidattack-delivery-p{os.getpid()}s1-x")  # our pid, another start time
    assert tempdirs.sweep_orphans(tmp_path) == [reused]


def test_symlinks_and_files_named_like_ours_are_left_alone(tmp_path: Path) -> None:
    target = folder(tmp_path, "precious")
    (tmp_path / f"vidattack-eval-p{dead_pid()}s1-link").symlink_to(target)
    (tmp_path / f"vidattack-eval-p{dead_pid()}s1-file").write_bytes(b"x")

    assert tempdirs.sweep_orphans(tmp_path) == []
    assert (target / "clean.mp4").exists() and len(list(tmp_path.iterdir())) == 3


def test_eval_sweeps_orphans_when_it_starts_even_if_it_then_fails(tmp_path: Path, monkeypatch) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    orphan = folder(temp, f"vidattack-eval-p{dead_pid()}s99-q1w2e3")
    live = Path(tempfile.mkdtemp(prefix=tempdirs.prefix("eval")))

    result = CliRunner().invoke(app, ["eval", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])

    assert result.exit_code == 2, result.stderr  # the data set is refused, after the sweep
    assert not orphan.exists() and list(temp.iterdir()) == [live]


@pytest.mark.slow
def test_a_rerun_after_kill_9_during_eval_leaves_no_temp_folder(tmp_path: Path) -> None:
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(temp), PYTHONPATH=str(ROOT))
    args = [sys.executable, "-m", "vidattack", "eval", "synthetic:1", "-a", "pgd-linf"]
    args += ["--out", str(out), "--steps", "30", "--threads", "1", "-q"]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)

    signal_when(proc, lambda: any(temp.glob("vidattack-eval-*")), signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL and any(temp.glob("vidattack-eval-*"))  # left behind

    rerun = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert list(temp.iterdir()) == []


# Sends SIGINT to itself while the command line is being imported: deterministic, where a timed
# signal could land before Python even runs our code.
_SIGNAL_DURING_IMPORT = """
import os, signal, sys
class Interrupter:
    def find_spec(self, name, path=None, target=None):
        if name == "vidattack.cli.app":
            os.kill(os.getpid(), signal.{sig})
        return None
sys.meta_path.insert(0, Interrupter())
sys.argv = ["vidattack", "models"]
from vidattack.startup import main
main()
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_while_starting_is_one_line_and_128_plus_the_signal(sig: str, code: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = _SIGNAL_DURING_IMPORT.format(sig=sig)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)

    assert proc.returncode == code
    assert proc.stderr.decode() == f"Error: interrupted by {sig} while starting\n"
    assert proc.stdout == b""
