"""The query engine of a deployed model: cache, query log, retries, concurrency, rate limit, counts.

`RemoteClient.answers(videos)` answers a batch of candidate videos (uint8 frames). Identical candidates
(same content hash) are asked once and then answered from the cache, within a batch too; answers an
earlier run logged are replayed on `--resume`. The rest go out `concurrency` at a time, never faster than
`max_qps`. Every request that leaves is counted (`requests`, failed ones included) and logged first.

The query budget holds for requests, not only candidates: `ask(videos, allowance=A)` charges each
candidate one query (sent, cached or replayed alike, so a remote attack follows the in-process one's
trajectory) plus one per request it took beyond the first (a failed-then-retried candidate costs 2,
and a replayed one costs again the retries the log shows it took), and refuses a retry that would
make that charge exceed `A`: the target never receives more requests than the budget allows.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from vidattack import files, tempdirs
from vidattack.remote.answers import Answer, BadAnswerError, parse_answer
from vidattack.remote.candidate import CODEC_NOTE, CandidateTiming, candidate_key, encode_candidate
from vidattack.remote.options import RemoteOptions
from vidattack.remote.querylog import QueryLog
from vidattack.remote.transport import CommandTarget, HttpTarget, RemoteError, Retryable


@dataclass
class Traffic:
    """What went to the target: requests (every one that left, failed ones and earlier runs' included),
    answers received, candidates answered from the cache or the replayed log, bytes sent."""

    requests: int = 0
    requests_before: int = 0
    answered: int = 0
    failed: int = 0
    cache_hits: int = 0
    replayed: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    def to_dict(self, target: str) -> dict[str, Any]:
        per = self.bytes_sent / self.requests if self.requests else 0.0
        return {
            "target": target,
            "codec": CODEC_NOTE,
            "requests": self.requests_before + self.requests,
            "requests_this_run": self.requests,
            "requests_before_resume": self.requests_before,
            "answered": self.answered,
            "failed": self.failed,
            "cache_hits": self.cache_hits,
            "replayed_from_log": self.replayed,
            "bytes_sent": self.bytes_sent,
            "bytes_per_query": round(per, 1),
            "seconds_waiting": round(self.seconds, 3),
            "requests_per_second": round(self.requests / self.seconds, 3) if self.seconds else None,
        }

    def add(self, other: Traffic, sign: int = 1) -> None:
        """Add (or with `sign=-1` subtract) `other`'s counts to these."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + sign * getattr(other, f.name))

    def sent(self) -> dict[str, Any]:
        """What one input sent (the report's `model.sent`): the codec, the requests that reached the
        target (failed ones included), the candidates answered from the cache or the replayed log, and
        the bytes sent, total and per request."""
        return {
            "codec": CODEC_NOTE,
            "requests": self.requests,
            "answered": self.answered,
            "failed": self.failed,
            "cache_hits": self.cache_hits,
            "replayed_from_log": self.replayed,
            "bytes_total": self.bytes_sent,
            "bytes_per_query": round(self.bytes_sent / self.requests, 1) if self.requests else None,
        }


class _Batch:
    """One `ask` call's shared state: the candidates' timing and the retries its allowance has room for
    (`spare`, None: no limit), taken by the worker threads under a lock."""

    def __init__(self, timing: CandidateTiming | None, spare: int | None) -> None:
        self.timing = timing
        self.spare = spare
        self.retries = 0
        self._lock = threading.Lock()

    def take_retry(self) -> bool:
        """Charge one more request to the batch; False (nothing charged) when the allowance is spent."""
        with self._lock:
            if self.spare is not None and self.retries >= self.spare:
                return False
            self.retries += 1
            return True


class _RateLimit:
    """At most `qps` request starts per second, shared by the worker threads."""

    def __init__(self, qps: float | None) -> None:
        self._gap = 1.0 / qps if qps else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._gap:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._gap
        if start > now:
            time.sleep(start - now)


@dataclass(frozen=True)
class Asked:
    """The answers to a batch, in order, and the queries it cost against the budget (see `ask`)."""

    answers: list[Answer]
    cost: int
    traffic: Traffic


class RemoteClient:
    """Answers candidate videos through `target` (see the module docstring)."""

    def __init__(self, target: HttpTarget | CommandTarget, options: RemoteOptions) -> None:
        self.target = target
        self.options = options
        self.traffic = Traffic()
        self._cache: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self._limit = _RateLimit(options.max_qps)
        self._pool = ThreadPoolExecutor(options.concurrency) if options.concurrency > 1 else None
        self._tmp = tempfile.TemporaryDirectory(prefix=tempdirs.prefix("remote"))
        self.log: QueryLog | None = None
        if options.query_log is not None:
            self.log = QueryLog(
                options.query_log, resume=options.resume, overwrite=options.overwrite, target=target.name
            )
            self._cache.update(self.log.answers)
            self.traffic.requests_before = self.log.sent_before
        self._replayable = set(self._cache)

    @property
    def summary_path(self) -> Path | None:
        """Where the traffic summary is kept (beside the query log), or None without a log."""
        log = self.options.query_log
        return log.with_name(log.stem + ".summary.json") if log is not None else None

    def answers(self, videos: list[Tensor], timing: CandidateTiming | None = None) -> list[Answer]:
        """The answers to `videos`, each `(T, H, W, 3)` uint8, in order, without a budget (see `ask`)."""
        return self.ask(videos, timing).answers

    def ask(
        self,
        videos: list[Tensor],
        timing: CandidateTiming | None = None,
        allowance: int | None = None,
        keys: list[str] | None = None,
    ) -> Asked:
        """The answers to `videos` (each `(T, H, W, 3)` uint8, shown at `timing`; default: a steady
        `options.fps`) and their cost, never more than `allowance` queries (None: no limit; see the
        module docstring). `keys` name the queries for the cache and the log when their content hash
        would not (`candidate.derived_key`). Raises `RemoteError` when the target keeps failing or a
        retry would exceed the allowance, and `BadAnswerError` for an answer that is not a
        classification."""
        if allowance is not None and allowance < len(videos):
            raise ValueError(f"expected an allowance of at least {len(videos)} queries, got {allowance}")
        when = timing
        if when is None and videos:
            when = CandidateTiming.steady(int(videos[0].shape[0]), self.options.fps)
        if keys is None:
            keys = [candidate_key(v, when) for v in videos] if when is not None else []
        elif len(keys) != len(videos):
            raise ValueError(f"expected one key per video ({len(videos)}), got {len(keys)}")
        before = dataclasses.replace(self.traffic)  # this call's traffic is the difference
        todo: dict[str, Tensor] = {}
        replayed_retries = 0
        for key, video in zip(keys, videos, strict=True):
            if key in self._cache:
                if key in self._replayable:
                    self._replayable.discard(key)
                    self.traffic.replayed += 1
                    replayed_retries += self.log.retries.get(key, 0) if self.log is not None else 0
                else:
                    self.traffic.cache_hits += 1
            elif key in todo:
                self.traffic.cache_hits += 1
            else:
                todo[key] = video
        spare = None if allowance is None else max(allowance - len(videos) - replayed_retries, 0)
        batch = _Batch(when, spare)
        start = time.perf_counter()
        try:
            if self._pool is not None and len(todo) > 1:
                list(self._pool.map(lambda k, v: self._ask(k, v, batch), todo.keys(), todo.values()))
            else:
                for key, video in todo.items():
                    self._ask(key, video, batch)
        finally:
            self.traffic.seconds += time.perf_counter() - start
            self._write_summary()
        used = dataclasses.replace(self.traffic)
        used.add(before, -1)
        used.requests_before = 0
        return Asked([self._cache[k] for k in keys], len(videos) + replayed_retries + batch.retries, used)

    def _ask(self, key: str, video: Tensor, batch: _Batch) -> Answer:
        assert batch.timing is not None  # a batch with candidates to send has their timing
        data = encode_candidate(video, batch.timing)
        path = Path(self._tmp.name) / f"{key[:16]}.mp4"
        if isinstance(self.target, CommandTarget):
            path.write_bytes(data)
        last = ""
        try:
            for attempt in range(self.options.retries + 1):
                if attempt and not batch.take_retry():
                    raise RemoteError(
                        f"{self.target.name}: failed ({last}) and the query budget has no room to send it "
                        f"again{self._kept()}"
                    )
                self._limit.wait()
                with self._lock:
                    self.traffic.requests += 1
                    self.traffic.bytes_sent += len(data)
                if self.log is not None:
                    self.log.sent(key, len(data), attempt)
                try:
                    answer = parse_answer(self.target.send(data, path), self.target.name)
                except Retryable as e:
                    last = str(e)
                    self._failed(key, last)
                    time.sleep(e.wait if e.wait is not None else self.options.backoff * 2**attempt)
                    continue
                except (BadAnswerError, RemoteError) as e:
                    self._failed(key, str(e))
                    raise
                with self._lock:
                    self._cache[key] = answer
                    self.traffic.answered += 1
                if self.log is not None:
                    self.log.answered(key, answer)
                return answer
        finally:
            path.unlink(missing_ok=True)
        raise RemoteError(
            f"{self.target.name}: no answer after {self.options.retries + 1} tries (last: {last}){self._kept()}"
        )

    def _kept(self) -> str:
        return f"; the query log {self.log.path} is kept" if self.log is not None else ""

    def _failed(self, key: str, reason: str) -> None:
        with self._lock:
            self.traffic.failed += 1
        if self.log is not None:
            self.log.failed(key, reason)

    def _write_summary(self) -> None:
        path = self.summary_path
        if path is not None:
            text = json.dumps(self.traffic.to_dict(self.target.name), indent=2) + "\n"
            files.write_atomic(path, text.encode())

    def close(self) -> None:
        """Stop the workers, close the log and remove the temp folder (the log and summary stay)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self.log is not None:
            self.log.close()
        self._tmp.cleanup()
