"""How to talk to a deployed model: one frozen value the CLI builds and the library reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vidattack.errors import BadParameterError


@dataclass(frozen=True)
class RemoteOptions:
    """Options of an HTTP or command target (`--model http://...` / `--model 'cmd:...'`).

    `header_env` names an environment variable holding request headers (`Name: value` lines, or a JSON
    object); the value itself never appears on a command line, in a report, a log or an error.
    `concurrency` queries are in flight at once (a batch of NES samples is sent in parallel);
    `max_qps` caps requests per second (None: no cap). Each request waits at most `timeout` seconds and
    a failed one (HTTP 429/5xx, connection error, timeout, a command's non-zero exit) is tried again up
    to `retries` times, `backoff` x 2^i seconds apart (or the service's Retry-After, at most 60 s);
    then the attack stops with an error (exit 1) and the query log is kept. `label_only` declares a
    service that answers a label without scores (decision-based attacks only: hsja); scores it may send
    are then ignored. `query_log` is the JSON-lines file every query and answer is appended to; with
    `resume`, answers already in it are replayed instead of asked again. `fps` is the frame rate
    of a candidate without a source's timing (the pipeline sends the source's own timestamps and rate).
    """

    header_env: str | None = None
    concurrency: int = 1
    max_qps: float | None = None
    timeout: float = 60.0
    retries: int = 4
    backoff: float = 0.5
    label_only: bool = False
    query_log: Path | None = None
    resume: bool = False
    overwrite: bool = False
    fps: int = 25

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not 1 <= int(self.concurrency) <= 256:
            raise BadParameterError(f"--concurrency: expected 1..256, got {self.concurrency}")
        if self.max_qps is not None and not (math.isfinite(self.max_qps) and self.max_qps > 0):
            raise BadParameterError(f"--max-qps: expected a positive number, got {self.max_qps}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise BadParameterError(f"expected a positive timeout, got {self.timeout}")
        if not 0 <= int(self.retries) <= 20:
            raise BadParameterError(f"expected 0..20 retries, got {self.retries}")
        if not (math.isfinite(self.backoff) and self.backoff >= 0):
            raise BadParameterError(f"expected a backoff >= 0 seconds, got {self.backoff}")
        if not 1 <= int(self.fps) <= 240:
            raise BadParameterError(f"expected a frame rate in 1..240, got {self.fps}")
        if self.header_env is not None and not self.header_env.replace("_", "").isalnum():
            raise BadParameterError(
                f"--header-env: expected the name of an environment variable, got {self.header_env!r}"
            )
