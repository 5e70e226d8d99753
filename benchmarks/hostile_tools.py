"""What the round-two hostile scenarios (`hostile_scenarios.py`) are built from: a runner of
`vidattack` processes from any checkout, small clips written with PyAV alone, hand-made results files
and checkpoints, and the judge of a clean refusal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

ADVICE = "will likely succeed"


@dataclass
class Outcome:
    """What one command did."""

    exit: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


class Runner:
    """Runs `vidattack` from `tree` (PYTHONPATH first), one process per command, on one CPU thread."""

    def __init__(self, tree: Path, temp: Path) -> None:
        self.tree, self.temp = tree, temp

    def env(self) -> dict[str, str]:
        return dict(os.environ, PYTHONPATH=str(self.tree), OMP_NUM_THREADS="1", TMPDIR=str(self.temp))

    def popen(self, *args: object, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "vidattack",
            *(os.fsencode(a) if isinstance(a, Path) else str(a) for a in args),
        ]
        return subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            env=self.env(),
            cwd=self.tree,
        )

    def __call__(self, *args: object, stdin: bytes | None = None, timeout: float = 300) -> Outcome:
        start = time.monotonic()
        proc = self.popen(*args, stdin=stdin)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return Outcome(
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.monotonic() - start,
        )

    def signalled(self, *args: object, ready: Callable[[], bool], sig: int = signal.SIGTERM) -> Outcome:
        """Run, send `sig` once `ready()`; `seconds` is the time from the signal to the exit (600 if it
        never began, 300 if it had to be killed)."""
        proc = self.popen(*args)
        deadline = time.monotonic() + 300
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate()
                return Outcome(proc.returncode, out.decode(), "stage never began\n" + err.decode(), 600)
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        return Outcome(proc.returncode, out.decode(), err.decode(), time.monotonic() - sent)


def clip(
    path: Path, frames: int = 8, size: tuple[int, int] = (40, 48), seed: int = 0, flat: bool = False
) -> Path:
    """A small lossless clip written with PyAV only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb", rate=25)
        s.width, s.height, s.pix_fmt, s.options = (
            size[1],
            size[0],
            "rgb24",
            {"qp": "0", "preset": "ultrafast"},
        )
        for _ in range(frames):
            img = base if flat else rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def one_clean_line(o: Outcome, code: int, *needles: str) -> bool:
    """Exit `code`, exactly one short `Error:` line holding every needle, no traceback, no advice."""
    return (
        o.exit == code
        and len(o.errors) == 1
        and len(o.errors[0]) < 400
        and all(n in o.errors[0] for n in needles)
        and "Traceback" not in o.stderr
        and ADVICE not in o.stderr
    )


def record(video: str, **fields: Any) -> dict[str, Any]:
    base = {"key": "k", "video": video, "label": 0, "clean": 0, "adversarial": 1, "success": True}
    return base | {"queries": 1, "linf": 1.0, "l2": 1.0, "map": 1.0, "status": "ok"} | fields


def results_dir(folder: Path, lines: list[bytes], configs: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_bytes(b"".join(lines))
    if configs is not None:
        (folder / "configs.json").write_bytes(configs)
    return folder


def line(rec: Any) -> bytes:
    return json.dumps(rec).encode() + b"\n"


def torch_files(folder: Path) -> dict[str, Path]:
    """A good training state, truncated and empty copies, and a pickle that runs code when loaded."""

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("a pickle ran code",))

    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "state.pt"
    torch.save({"epoch": 1, "w": torch.zeros(5000)}, good)
    (folder / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "empty.pt").write_bytes(b"")
    torch.save({"x": Evil()}, folder / "evil.pth")
    (folder / "evil.safetensors").write_bytes((folder / "evil.pth").read_bytes())
    return {p.stem + p.suffix: p for p in folder.iterdir()}


def synthetic_clip(path: Path, seed: int) -> Path:
    """A clip of the generator's class 0, which the bundled model recognises (so it is attacked)."""
    from vidattack.data.synthetic import make_clip

    frames = make_clip(0, seed=seed, frames=16, size=112).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb", rate=25)
        s.width, s.height, s.pix_fmt, s.options = 112, 112, "rgb24", {"qp": "0", "preset": "ultrafast"}
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
