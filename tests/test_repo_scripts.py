"""The repository's own scripts: the committed adversarial-training tables re-render from their
records alone, and `scripts/sizes.py` measures function bodies the way the size rule means."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_committed_advtrain_tables_render_from_the_committed_records_alone() -> None:
    tables = _load("benchmarks/advtrain_tables.py")
    # no model file is read: runs/ is git-ignored, and a fresh clone must give the same tables
    assert tables.render() + "\n" == (ROOT / "benchmarks/results/advtrain-tables.md").read_text()


def test_a_cell_without_a_record_stops_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tables = _load("benchmarks/advtrain_tables.py")
    lines = tables.CELLS.read_text().splitlines()
    dropped = next(line for line in lines if '"model": "robust-6ep/tiny-c3d-at-pgd"' in line)
    cells = tmp_path / "cells.jsonl"
    cells.write_text("\n".join(line for line in lines if line != dropped) + "\n")
    monkeypatch.setattr(tables, "CELLS", cells)
    with pytest.raises(
        tables.MissingCells, match=r"1 table cells have no record.*robust-6ep/tiny-c3d-at-pgd"
    ):
        tables.render()


def test_sizes_counts_a_body_without_its_signature_and_docstring(tmp_path: Path) -> None:
    sizes = _load("scripts/sizes.py")
    source = tmp_path / "m.py"
    source.write_text(
        "def f(\n    a: int,\n) -> int:\n"  # a signature over three lines
        '    """Docstring\n    over two lines."""\n'
        "    b = a + 1\n    return b\n\n\n"
        "class C:\n    def g(self) -> None:\n        pass\n"
    )
    bodies = {b.qualname: (b.lines, b.params) for b in sizes.function_bodies(source)}
    assert bodies == {"f": (2, 1), "C.g": (1, 0)}  # lines of body, parameters (self aside)


@pytest.mark.slow
def test_the_speed_benchmark_runs_every_contender_on_a_huggingface_videomae(tmp_path: Path) -> None:
    # videomae-small112 is the small stand-in of VideoMAE-B (same builder, same folder loader, 112 px):
    # the full-size run is the lead's, on a quiet machine
    pytest.importorskip("art")
    pytest.importorskip("torchattacks")
    out = tmp_path / "speed.jsonl"
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_pgd.py"), "--models", "videomae-small112"]
    cmd += ["--repeats", "1", "--steps", "1", "--hf-cache", str(tmp_path / "hf"), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["contender"] for r in rows} == {
        "bare-fp32", "loop-fp32", "bare-bf16", "loop-bf16",
        "vidattack-fp32", "vidattack-bf16", "torchattacks", "art",
    }  # fmt: skip
    assert all(isinstance(r["fooled"], bool) for r in rows if not r["contender"].startswith(("bare", "loop")))
    table = _load("benchmarks/precision_tables.py").speed_table(rows)
    (row,) = [line for line in table if line.startswith("| videomae")]
    assert row.startswith("| videomae-small112 |") and " - |" not in row  # every cell measured


def test_the_speed_table_shows_each_model_from_its_latest_run() -> None:
    tables = _load("benchmarks/precision_tables.py")

    def row(model: str, run: str, contender: str, seconds: float) -> dict[str, object]:
        return {
            "model": model, "run": run, "contender": contender, "cpu_median_s": seconds, "median_s": seconds,
            "times_s": [seconds], "steps": 5, "threads": 1, "device": "cpu", "input": [1, 16, 3, 112, 112],
            "load_before": 1.0, "load_after": 1.0, "cpu_bf16_flags": [], "torch": "2",
        }  # fmt: skip

    rows = [row("tiny-c3d", "r1", c, 1.0) for c in ("vidattack-fp32", "loop-fp32", "bare-fp32")]
    rows += [row("videomae-b", "r1", "vidattack-fp32", 9.0), row("videomae-b", "r2", "vidattack-fp32", 2.0)]
    rows += [row("videomae-b", "r2", "loop-fp32", 5.5), row("videomae-b", "r2", "bare-fp32", 1.0)]
    table = tables.speed_table(rows)
    assert "| tiny-c3d | r1 | 1.000 s | - | - | - | - | 0.200 | - |" in table
    # the later run replaces the earlier one; a contender that did not run is a dash
    assert "| videomae-b | r2 | 2.000 s | - | - | - | - | 1.100 | - |" in table
