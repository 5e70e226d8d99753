"""`results.jsonl`: one JSON line per (configuration, video), append-only, resumable.

Each record is flushed as it is written and the file is fsynced every `fsync_every` records (and on
close), so a killed run loses at most its last line or few. Reading tolerates exactly what a kill
leaves: a last line without its newline (half written) is ignored, and opening the file for appending
cuts it off first, so the next record starts on a fresh line and that item is redone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger("vidattack")

RESULTS_NAME = "results.jsonl"
CONFIGS_NAME = "configs.json"

# Fields that measure time or place rather than the result; `comparable` leaves them out.
TIMING_FIELDS = frozenset({"seconds", "attack_seconds"})
# Fields of the result that two runs need not reproduce byte for byte: the delivery file's size, as
# libx264 through PyAV (`write_delivery`, one thread) does not always give the same stream for the
# same frames (the I-frame agrees, later frames can differ by a few bytes). `comparable` leaves them out.
UNSTABLE_FIELDS = frozenset({"delivery_bytes"})


def _complete_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a half-written record
    for lineno, line in enumerate(data[:end].splitlines(), start=1):
        if line.strip():
            yield lineno, line


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a results file (none if it does not exist).

    A complete line that is not valid JSON (a disk that lost a block) is skipped with a warning; its
    item is redone on resume like a missing one.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for lineno, line in _complete_lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s:%d: skipping a damaged record", path, lineno)
            continue
        if isinstance(rec, dict) and "key" in rec and "video" in rec:
            records.append(rec)
        else:
            log.warning("%s:%d: skipping a line that is not a record", path, lineno)
    return records


def done_pairs(records: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """The (config key, video id) pairs that need no rerun: every record except failed ones."""
    return {(r["key"], r["video"]) for r in records if r.get("status", "ok") == "ok"}


def latest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (config key, video id): the last one written (a retried failure replaces the
    failure; a record appended twice by overlapping runs counts once)."""
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        pair = (r["key"], r["video"])
        by_pair.pop(pair, None)  # keep first-seen order of the final records
        by_pair[pair] = r
    return list(by_pair.values())


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its timing fields (and `UNSTABLE_FIELDS`): what must agree between local, Ray
    and sharded runs."""
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS and k not in UNSTABLE_FIELDS}


class ResultsWriter:
    """Appends records to `results.jsonl`; use as a context manager.

    Opening repairs a torn last line (see the module docstring). Each record is one `write` of one
    line followed by `flush`; `os.fsync` runs every `fsync_every` records and on close.
    """

    def __init__(self, path: str | Path, *, fsync_every: int = 16) -> None:
        self.path = Path(path)
        self.fsync_every = max(1, int(fsync_every))
        self._pending = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_line()
        self._file = self.path.open("ab")

    def _cut_torn_line(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            # Search backwards for the last newline in blocks; records are short.
            pos, block = size, 1 << 16
            while pos > 0:
                start = max(0, pos - block)
                f.seek(start)
                chunk = f.read(pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    end = start + nl + 1
                    break
                pos = start
            else:
                end = 0
            if end < size:
                log.warning("%s: dropping a half-written last record (%d bytes)", self.path, size - end)
                f.truncate(end)

    def write(self, record: dict[str, Any]) -> None:
        from vidattack.pipeline.report import to_json

        line = to_json(record, indent=None) + "\n"  # one line; infinities as strings, as in reports
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        self._pending += 1
        if self._pending >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._pending:
            os.fsync(self._file.fileno())
            self._pending = 0

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_configs(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The configurations recorded in `OUT/configs.json`, by key (none if absent)."""
    path = Path(out_dir) / CONFIGS_NAME
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {c["key"]: c for c in data.get("configs", [])}


def write_configs(out_dir: str | Path, configs: Iterable[dict[str, Any]]) -> Path:
    """Add `configs` to `OUT/configs.json` (kept: every configuration ever run there), atomically."""
    from vidattack.pipeline.report import write_report

    known = read_configs(out_dir)
    for c in configs:
        known.setdefault(c["key"], c)
    path = Path(out_dir) / CONFIGS_NAME
    write_report(path, {"configs": list(known.values())})
    return path
