"""Helpers shared by the batch tests: a toy model file, tiny clips, the CLI in-process and as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import toy_view, write_clip
from typer.testing import CliRunner

from vidattack.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def save_toy_model(folder: Path) -> Path:
    """The toy model as a TorchScript file with its JSON sidecar (a real `--model PATH`)."""
    view = toy_view()
    path = folder / "toy.ts"
    torch.jit.trace(view.net, torch.rand(1, 3, 8, 40, 48)).save(str(path))
    sidecar = {"preprocess": view.preprocess.to_dict(), "labels": view.labels}
    (folder / "toy.ts.json").write_text(json.dumps(sidecar))
    return path


def clip(path: Path, seed: int = 0, frames: int = 8) -> Path:
    """A tiny random clip (frames x 40 x 48), written losslessly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    return write_clip(path, torch.randint(0, 256, (frames, 40, 48, 3), generator=g, dtype=torch.uint8))


def run(*args: object, input: str | bytes | None = None):
    """`vidattack ARGS` in this process; never a traceback."""
    result = runner.invoke(app, [a if isinstance(a, str) else os.fsdecode(a) for a in args], input=input)  # type: ignore[arg-type]
    assert "Traceback" not in (result.stdout + result.stderr), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def cli_process(*args: object, **kwargs) -> subprocess.Popen:
    """`python -m vidattack ARGS` as its own process (for signals), this checkout first on the path."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    cmd = [
        sys.executable,
        "-m",
        "vidattack",
        *(os.fsencode(a) if isinstance(a, Path) else str(a) for a in args),
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, **kwargs
    )


def files_under(folder: Path) -> list[str]:
    """Every file under `folder`, hidden ones included, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
