"""Process-wide cancellation: one flag that a signal handler sets and every long loop checks.

Python runs signal handlers in the main thread only, and only between bytecodes: an exception raised
there never reaches a background thread that is encoding a 5000-frame video or rendering its heatmap,
and a stop that waits for such work took minutes. So the handlers (`pipeline.signals.InterruptGuard`
for perturb's batch, `raising_on_signals` for the other commands) call `request(signum)`, and each
frame loop of decode, encode, verify, delivery and render calls `check()`, which raises `Cancelled` in
whichever thread runs it once a stop was asked for. `check()` costs one attribute read.

`Cancelled` is a `KeyboardInterrupt`: no `except Exception` of a batch turns it into an item's error,
and the atomic writers remove their temp files on the way out.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(KeyboardInterrupt):
    """Work stopped because signal `signum` asked for it; `exit_code` is 128 + signum (130 SIGINT,
    143 SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name (`SIGTERM`)."""
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's exit status of a process stopped by the signal."""
        return 128 + self.signum


_requested: int | None = None
_lock = threading.Lock()


def request(signum: int) -> None:
    """Ask every loop that calls `check()` to stop (the first signal counts; later ones change nothing)."""
    global _requested
    with _lock:
        if _requested is None:
            _requested = signum


def requested() -> int | None:
    """The signal a stop was asked for with, or None."""
    return _requested


def check() -> None:
    """Raise `Cancelled` when a stop was asked for (call it once per frame of a long loop)."""
    signum = _requested
    if signum is not None:
        raise Cancelled(signum)


def clear() -> None:
    """Forget a stop (when the command that was stopped has returned: tests run many in one process)."""
    global _requested
    with _lock:
        _requested = None


@contextlib.contextmanager
def raising_on_signals() -> Iterator[None]:
    """For the block, SIGINT and SIGTERM ask for a stop and raise `Cancelled` in the main thread, so
    `finally` blocks and context managers run (temp folders removed, locks released) where SIGTERM's
    default action would end the process at once. A no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        first = _requested is None
        request(signum)
        if first:  # a second signal during the clean-up waits for it
            raise Cancelled(signum)

    previous: dict[int, Any] = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        clear()
