"""SIGINT and SIGTERM during a batch: stop cleanly, never between two writes of a record.

`InterruptGuard` installs handlers for both signals for the batch. Two ways to stop on them:

- raising: inside `guard.interruptible()` a signal raises `Interrupted` (a `KeyboardInterrupt`) where
  the program is; the CLI uses it while it loads the model and checks the options, and
  `pipeline.batch.run_batch` around each job. A job that is interrupted removes what it was writing
  (the atomic writer's temp file) and what it wrote (its incomplete output set).
- asking: outside that block a signal is only remembered (`guard.received`); the batch engine
  (`pipeline.engine.perturb_many(should_stop=...)`) asks between batches and attack steps, lets the
  writes under way finish, hands back the records of finished inputs and removes unfinished ones.

Either way the folder holds only finished output sets and `--resume` continues where the batch
stopped. Only the first signal interrupts: a second one during that clean-up is remembered, not raised.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from vidattack import cancel
from vidattack.cancel import Cancelled


class Interrupted(Cancelled):
    """The batch was asked to stop by `signum`; `exit_code` is 128 + signum (130 SIGINT, 143 SIGTERM).
    A `vidattack.cancel.Cancelled`, so the frame loops' `check()` and this guard stop work alike."""


_active: InterruptGuard | None = None


def finish_without_interruption() -> None:
    """From here to the end of the running job a signal waits for the job to return: called when the
    job's last write starts (its report), since undoing a finished job would only lose work. The batch
    stops before the next job."""
    # only the main thread receives signals: a job finished by a worker (the batch engine's) must not
    # change how the main thread's attack is interrupted
    if _active is not None and threading.current_thread() is threading.main_thread():
        _active._raising = False


class InterruptGuard:
    """Install handlers for SIGINT and SIGTERM for the `with` block (main thread only; elsewhere a no-op).

    `received` is the first signal's number (None if none came); `interruptible()` marks where a signal
    may raise `Interrupted` at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = False
        self._raised = False
        self._previous: dict[int, Any] = {}
        self._outer: InterruptGuard | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        cancel.request(signum)  # background encodes and renders stop at their next frame
        if self._raising and not self._raised:
            self._raised = True
            raise Interrupted(signum)

    def __enter__(self) -> InterruptGuard:
        global _active
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        self._outer, _active = _active, self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _active
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        _active = self._outer
        if self._outer is None:
            cancel.clear()

    def check(self) -> None:
        """Raise `Interrupted` if a signal came (between jobs)."""
        if self.received is not None:
            self._raised = True
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A signal inside this block raises `Interrupted` where the program is."""
        self.check()
        self._raising = True
        try:
            yield
        finally:
            self._raising = False
