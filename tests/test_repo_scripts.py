"""The repository's own scripts: the committed adversarial-training tables re-render from their
records alone, and `scripts/sizes.py` measures function bodies the way the size rule means."""

from __future__ import annotations

import importlib.util
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
