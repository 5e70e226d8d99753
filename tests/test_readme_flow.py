"""The README's `find . -name '*.mp4' | vidattack perturb - ...` works right after its first command,
and the previous run's outputs that `find` lists are left out with the reason shown, not silently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import EXAMPLES


@pytest.mark.slow
def test_the_readme_pipe_runs_after_the_first_command(tmp_path):
    for name in ("move_left_1.mp4", "still_1.mp4"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "vidattack", "perturb"]
    first = subprocess.run([*cli, "move_left_1.mp4", "--overwrite", "--steps", "2"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr
    found = subprocess.run(
        ["find", ".", "-name", "*.mp4"], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    assert "vidattack-out/move_left_1.adv.mp4" in found  # find lists the first run's outputs too
    piped = subprocess.run([*cli, "-", "--resume", "--steps", "2", "--format", "jsonl"], input=found,
                           cwd=tmp_path, env=env, capture_output=True, text=True)  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    records = [json.loads(line) for line in piped.stdout.splitlines()]
    assert sorted(os.path.basename(r["input"]) for r in records) == ["move_left_1.mp4", "still_1.mp4"]
    assert [r.get("skipped", False) for r in sorted(records, key=lambda r: r["input"])] == [True, False]
    assert "left out 4 paths from stdin (4 inside the output folder)" in piped.stderr
