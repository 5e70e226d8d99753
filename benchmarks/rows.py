"""The resumable results files of the benchmark scripts: one JSON row per finished measurement, each
with a `key`, appended as it finishes, so an interrupted run picks up where it stopped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of `path` by their `key` (none if it does not exist; a later row wins)."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["key"]] = row
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append `row` as one line and sync it to disk: a row written is a measurement kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
