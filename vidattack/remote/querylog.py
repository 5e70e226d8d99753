"""The query log: every request to a target and every answer, appended and synced as it happens.

One JSON object per line:

    {"event": "target", "target": NAME}                     # first: whose answers these are
    {"event": "sent", "key": K, "bytes": B, "try": i}       # before the request leaves
    {"event": "answer", "key": K, "answer": {"labels": [...], "scores": [...] | null}}
    {"event": "failed", "key": K, "reason": "HTTP 503"}

`K` is the content hash of the candidate (`candidate.candidate_key`). A "sent" line is synced to disk
before its request is made, so after a kill -9 the log counts every request that may have reached the
target (one still on the wire shows as sent without an answer, and is counted as spent). Reading back
(`--resume`) gives the answers by key, the number of requests already spent, and the retries each
answered candidate took (replayed, they are charged to the budget again); a last line cut short
by the kill is ignored, any other bad line is an error naming the log. A log of another target (its
name: scheme, host, port and path, never a query string or credentials) is refused, not replayed:
its answers are another model's.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from vidattack.errors import UsageError, VidattackError
from vidattack.remote.answers import Answer


class QueryLog:
    """An open query log (append-only); `answers`, `sent_before` and `retries` (requests beyond the first
    for each answered key) are what an earlier run left."""

    def __init__(self, path: Path, *, resume: bool, overwrite: bool, target: str) -> None:
        self.path = path
        self.answers: dict[str, Answer] = {}
        self.sent_before = 0
        self.retries: dict[str, int] = {}
        self._sends: dict[str, int] = {}
        if path.exists() and not resume and not overwrite:
            raise UsageError(
                f"{path} exists: pass --resume to continue its attack without asking again, or "
                "--overwrite to start a new log"
            )
        self.target = target
        if resume and path.exists():
            self._replay()
        # opened at the first entry, not here: a run refused before it asks anything (an attack the
        # target cannot serve) leaves no log behind, and the log --overwrite replaces is kept until then
        self._mode = "a" if resume else "w"
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def _replay(self) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                if number == len(lines):  # the kill cut the last line short (no newline after it)
                    break
                raise VidattackError(f"{self.path}: line {number} is not JSON; the log is damaged") from None
            if isinstance(entry, dict) and entry.get("event") == "target":
                if entry.get("target") != self.target:
                    raise UsageError(
                        f"{self.path} holds the answers of {str(entry.get('target'))[:200]!r}, not of {self.target}: "
                        "use another --out, or --overwrite to start a new log"
                    )
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                raise VidattackError(f"{self.path}: line {number} is not a query log entry")
            if entry.get("event") == "sent":
                self.sent_before += 1
                self._sends[entry["key"]] = self._sends.get(entry["key"], 0) + 1
            elif entry.get("event") == "answer":
                self.answers[entry["key"]] = Answer.from_json(entry.get("answer"), self.target)
                self.retries[entry["key"]] = max(self._sends.get(entry["key"], 1) - 1, 0)

    def sent(self, key: str, size: int, attempt: int) -> None:
        """Record a request about to be made (synced before it leaves)."""
        self._append({"event": "sent", "key": key, "bytes": size, "try": attempt})

    def answered(self, key: str, answer: Answer) -> None:
        self._append({"event": "answer", "key": key, "answer": answer.to_json()})

    def failed(self, key: str, reason: str) -> None:
        self._append({"event": "failed", "key": key, "reason": reason})

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=True) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open(self._mode, encoding="utf-8")
                if self._file.tell() == 0:  # a new log (or an empty one): say whose answers it holds
                    self._file.write(json.dumps({"event": "target", "target": self.target}) + "\n")
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.close()
