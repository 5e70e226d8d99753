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

from vidattack.errors import OutputLockedError, UsageError
from vidattack.files import write_failed
from vidattack.text import shorten

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
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"{path}: cannot be read ({e.strerror or e})") from None
    end = data.rfind(b"\n") + 1  # bytes after the last newline are a half-written record
    lines = data[:end].splitlines()
    if data[end:].strip():
        log.warning("%s:%d: skipping a half-written last line", path, len(lines) + 1)
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            yield lineno, line


#: What each field of a record must be, by status (`schema_problem`). Numbers may be JSON strings
#: ("Infinity"), as `to_json` writes infinities; `None` in a tuple means the field may be null.
_NUMBER = (int, float, str)
_COMMON_FIELDS: dict[str, tuple[type | None, ...]] = {"key": (str,), "video": (str,), "label": (int,)}
_OK_FIELDS: dict[str, tuple[type | None, ...]] = {
    "clean": (int,),
    "adversarial": (int,),
    "success": (bool, None),
    "queries": (int, float),
    "linf": _NUMBER,
    "l2": _NUMBER,
    "map": _NUMBER,
}
_OPTIONAL_FIELDS: dict[str, tuple[type | None, ...]] = {
    "attacked": (bool,),
    "success_after_encode": (bool, None),
    "success_after_delivery": (bool, None),
    "ratio_max": (*_NUMBER, None),
    "frames_perturbed": (int, float),
    "seconds": (int, float),
}


def _type_ok(value: Any, kinds: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in kinds
    if isinstance(value, bool):  # a bool is an int to Python, never to a record
        return bool in kinds
    if isinstance(value, str) and str in kinds and float in kinds:  # a number written as a string
        try:
            float(value)
        except ValueError:
            return False
        return True
    return any(k is not None and k is not bool and isinstance(value, k) for k in kinds)


def schema_problem(record: Any) -> str | None:
    """Why `record` is not a results record (None when it is one): what `summarize` reads, typed."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    status = record.get("status", "ok")
    if status not in ("ok", "error"):
        return f"expected status ok or error, got {shorten(repr(status))}"
    fields = {**_COMMON_FIELDS, **(_OK_FIELDS if status == "ok" else {})}
    for name in fields:
        if name not in record:
            return f"expected a field {name!r}, found none"
    for name, kinds in {**fields, **(_OPTIONAL_FIELDS if status == "ok" else {})}.items():
        if name in record and not _type_ok(record[name], kinds):
            return f"expected {name!r} to be {_kind_names(kinds)}, got {shorten(json.dumps(record[name]))}"
    return None


def _kind_names(kinds: tuple[type | None, ...]) -> str:
    names: dict[type | None, str] = {
        int: "an integer",
        float: "a number",
        str: "a number" if float in kinds else "a string",  # numbers may be written as strings
        bool: "true/false",
        None: "null",
    }
    return " or ".join(dict.fromkeys(names[k] for k in kinds))


def read_records(path: str | Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """Every complete record of a results file (none if it does not exist).

    A line that is not valid UTF-8 JSON (a disk that lost a block) or a half-written last line is
    skipped with one warning naming the file and line; its item is redone on resume like a missing one.
    A JSON line that is not a record (`schema_problem`) is skipped with a warning too, or with `strict`
    (`--merge`, whose records go into a summary as they are) raises `UsageError` naming file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for lineno, line in _complete_lines(path):
        try:
            rec = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError):  # bad UTF-8, bad JSON, or nested past the parser
            log.warning("%s:%d: skipping a damaged line (not UTF-8 JSON)", path, lineno)
            continue
        problem = schema_problem(rec)
        if problem is None:
            records.append(rec)
        elif strict:
            raise UsageError(f"{path}:{lineno}: not a results record: {problem}")
        else:
            log.warning("%s:%d: skipping a line that is not a record (%s)", path, lineno, problem)
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

    Opening takes the folder's results lock (`.results.jsonl.lock`: a second eval on the same `--out`
    fails at once with `OutputLockedError` instead of doing all the work again) and repairs a torn last
    line (see the module docstring). Each record is one `write` of one line followed by `flush`;
    `os.fsync` runs every `fsync_every` records and on close. A record for a pair whose earlier record
    failed replaces it: on close the file is rewritten with the last record of each pair, so retried
    failures are not kept once per rerun.
    """

    def __init__(self, path: str | Path, *, fsync_every: int = 16) -> None:
        from vidattack.pipeline.locks import acquire

        self.path = Path(path)
        self.fsync_every = max(1, int(fsync_every))
        self._pending = 0
        self._replaced = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            self._lock_fd = acquire(self._lock)
        except OutputLockedError as e:
            raise OutputLockedError(f"{self.path}: {e}") from None
        try:
            self._cut_torn_line()
            self._failed = {
                (r["key"], r["video"]) for r in _quiet_records(self.path) if r.get("status") != "ok"
            }
            self._file = self.path.open("ab")
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        from vidattack.pipeline.locks import release

        if self._lock_fd is not None:
            release(self._lock, self._lock_fd)
            self._lock_fd = None

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
                # `read_records` has warned about this line already
                log.info("%s: dropping a half-written last record (%d bytes)", self.path, size - end)
                f.truncate(end)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (one line, flushed)."""
        from vidattack.pipeline.report import to_json

        self._replaced |= (record.get("key"), record.get("video")) in self._failed
        line = to_json(record, indent=None) + "\n"  # one line; infinities as strings, as in reports
        try:
            self._file.write(line.encode("utf-8"))
            self._file.flush()
        except OSError as e:  # a full disk: say which file
            raise write_failed(e, self.path) from e
        self._pending += 1
        if self._pending >= self.fsync_every:
            self.sync()

    def sync(self) -> None:
        """`fsync` the records written since the last one."""
        if self._pending:
            try:
                os.fsync(self._file.fileno())
            except OSError as e:
                raise write_failed(e, self.path) from e
            self._pending = 0

    def close(self) -> None:
        """Sync and close the file, drop the replaced failures (see the class), release the lock."""
        try:
            if not self._file.closed:
                self.sync()
                self._file.close()
                if self._replaced:
                    self._compact()
        finally:
            self._release()

    def _compact(self) -> None:
        from vidattack.files import write_atomic
        from vidattack.pipeline.report import to_json

        kept = latest(_quiet_records(self.path))
        write_atomic(self.path, "".join(to_json(r, indent=None) + "\n" for r in kept).encode("utf-8"))

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _quiet_records(path: Path) -> list[dict[str, Any]]:
    """The records of `path` without warnings (the reader has warned already)."""
    logger = log.disabled
    log.disabled = True
    try:
        return read_records(path)
    finally:
        log.disabled = logger


def read_configs(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The configurations recorded in `OUT/configs.json`, by key (none if absent).

    Raises:
        UsageError: the file is damaged or not what an eval writes; the message names it.
    """
    path = Path(out_dir) / CONFIGS_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise UsageError(f"{path}: cannot be read ({e.strerror or e})") from None
    except (ValueError, RecursionError):
        raise UsageError(f"{path}: damaged (not UTF-8 JSON); remove it to start the folder afresh") from None
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, list):
        raise UsageError(f'{path}: expected an object with a list "configs", got {shorten(json.dumps(data))}')
    for i, c in enumerate(configs, start=1):
        problem = _config_problem(c)
        if problem is not None:
            raise UsageError(f"{path}: configuration {i}: {problem}")
    return {c["key"]: c for c in configs}


def _config_problem(config: Any) -> str | None:
    if not isinstance(config, dict):
        return f"expected an object, got {shorten(json.dumps(config))}"
    if not isinstance(config.get("key"), str):
        return 'expected a string "key"'
    if not isinstance(config.get("settings") or {}, dict):
        return '"settings" is not an object'
    for name in ("attack", "target"):
        if name in config and not isinstance(config[name], str):
            return f'"{name}" is not a string'
    bv = config.get("budget_value")
    if bv is not None and (isinstance(bv, bool) or not isinstance(bv, int | float)):
        return '"budget_value" is not a number'
    return None


def write_configs(out_dir: str | Path, configs: Iterable[dict[str, Any]]) -> Path:
    """Add `configs` to `OUT/configs.json` (kept: every configuration ever run there), atomically."""
    from vidattack.pipeline.report import write_report

    known = read_configs(out_dir)
    for c in configs:
        known.setdefault(c["key"], c)
    path = Path(out_dir) / CONFIGS_NAME
    write_report(path, {"configs": list(known.values())})
    return path
