"""What a person sees in a real terminal: the CLI run in a pseudo-terminal (pexpect), its output played
through a terminal emulator (pyte), and the final screen checked as it would be read.

Skipped, saying why, where pexpect or pyte is not installed (both are in the `test` extra).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES

pexpect = pytest.importorskip("pexpect", reason="pexpect is not installed (pip install -e '.[test]')")
pyte = pytest.importorskip("pyte", reason="pyte is not installed (pip install -e '.[test]')")

CLIPS = ["move_left_1.mp4", "rotate_ccw_2.mp4", "zoom_out_2.mp4"]


class Terminal:
    """A command in a `rows` x `cols` pseudo-terminal; `screen()` is what it shows."""

    def __init__(self, args: list[str], *, cols: int = 80, rows: int = 60) -> None:
        self.screen_ = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen_)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": str(cols), "LINES": str(rows)}
        env.pop("NO_COLOR", None)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "vidattack", *args], dimensions=(rows, cols), env=env, timeout=120
        )

    def pump(self, until: float) -> bool:
        """Feed output to the emulator until `until` (monotonic); True when the command ended."""
        while time.monotonic() < until:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                return True
        return False

    def wait(self, seconds: float = 120) -> int:
        assert self.pump(time.monotonic() + seconds), "the command did not end"
        self.child.close()
        return self.child.exitstatus if self.child.exitstatus is not None else 128 + self.child.signalstatus

    def screen(self) -> list[str]:
        return [line.rstrip() for line in self.screen_.display if line.strip()]


def test_a_finished_batch_leaves_a_clean_screen_at_80_columns(tmp_path):
    out = tmp_path / "out"
    term = Terminal(["perturb", *(str(EXAMPLES / c) for c in CLIPS), "--out", str(out), "--steps", "2"])
    assert term.wait() in (0, 1)
    lines = term.screen()
    text = "\n".join(lines)
    assert not re.search(r"~\d+:\d\d:\d\d left|\d+/3 videos", text), text  # no bar left frozen
    title = [line for line in lines if "vidattack perturb" in line]
    assert len(title) == 1 and title[0].strip() == "vidattack perturb", text  # nothing printed onto it
    for clip in CLIPS:  # each name on one line, whole or cut with an ellipsis: never split in two
        stem = clip.removesuffix(".mp4")
        assert any(clip in line or re.search(re.escape(stem[:6]) + r"\S*…", line) for line in lines), text
    assert not any(line.lstrip().startswith((".mp4", "mp4", "t_1")) for line in lines), text
    assert all(len(line) <= 80 for line in lines)
    assert re.search(r"^\d of 3 fooled \(judged on the written file\)$", text, re.M), text
    assert f"outputs in {out}/ (open {out}/index.html to see them)" in "".join(lines)


@pytest.mark.slow
def test_after_ctrl_c_the_table_lists_every_input_that_was_done(tmp_path):
    clips = sorted(p for p in EXAMPLES.glob("*.mp4"))
    term = Terminal(["perturb", str(EXAMPLES), "--out", str(tmp_path / "out"), "--steps", "2"])
    deadline = time.monotonic() + 120
    while not any(re.search(r"[3-9]/19 videos", line) for line in term.screen()):
        assert not term.pump(time.monotonic() + 0.5) and time.monotonic() < deadline, term.screen()
    term.child.kill(signal.SIGINT)
    assert term.wait() == 130
    text = "\n".join(term.screen())
    done = int(re.search(r"interrupted by SIGINT: (\d+) of 19 inputs done", text.replace("\n", " ")).group(1))
    # a row starts in the table's first column; its wrapped label lines start further right
    rows = [line[2:] for line in term.screen() if re.match(r"^│ \S", line)]
    assert len(rows) == done and all(r.split()[0].removesuffix("…") in str(clips) for r in rows), text
    reports = list((tmp_path / "out").glob("*.report.json"))
    assert len(reports) == done
    assert Path(tmp_path / "out" / "index.html").is_file()  # the page of what was finished


@pytest.mark.slow
def test_train_prints_its_epoch_lines_above_the_bar_and_budgets_in_levels(tmp_path):
    args = ["train", "--arch", "tiny-c3d", "--data", "synthetic:2", "--epochs", "2", "--batch-size", "8"]
    args += ["--adversarial", "pgd-linf", "--eps", "4/255", "--steps", "1", "--eval-size", "2"]
    term = Terminal([*args, "--out", str(tmp_path / "m.safetensors")], cols=100)
    assert term.wait() == 0
    lines = term.screen()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"], lines
    assert all("(eps 4/255)" in line and "━" not in line for line in epochs), lines
