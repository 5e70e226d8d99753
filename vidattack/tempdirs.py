"""Temporary folders that a later run can sweep when their owner died without removing them.

`tempfile.TemporaryDirectory` removes its folder when the block ends, a signal included (see
`vidattack.cancel`), but never after a `kill -9`, an out-of-memory kill or a power cut: such a
folder stays in the system's temp folder for good. So every temporary folder of ours is named after
its owner, `vidattack-KIND-p<pid>s<start>-XXXXXXXX`, where `<start>` is the owner's start time (clock
ticks since boot, from /proc; 0 where that is not known), and `sweep_orphans` (called when a command
starts) removes those whose owner is gone. The start time tells a dead owner from a new process that
was given the same pid.

Only folders of ours are touched: the name must match exactly, the folder must be a real folder (not
a symlink) owned by the current user, and its owner process must be gone. A live run's folder, and
any other user's, is never removed.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

_NAME = re.compile(r"vidattack-[a-z]+-p(\d+)s(\d+)-[A-Za-z0-9_]+")


def start_ticks(pid: int) -> int | None:
    """Process `pid`'s start time in clock ticks since boot (/proc), or None where it cannot be read
    (no /proc, or no such process)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count from the last ")"
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _alive(pid: int, start: int) -> bool:
    """Whether the process that made a folder named with `pid` and `start` still runs."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (or no such pid at all)
        return False
    except PermissionError:  # a process of another user has that pid: ours is gone only if the start differs
        pass
    now = start_ticks(pid)
    return start == 0 or now is None or now == start


def prefix(kind: str) -> str:
    """The name prefix of a temporary folder of `kind` made by this process:
    `tempfile.TemporaryDirectory(prefix=prefix("eval"))`."""
    pid = os.getpid()
    return f"vidattack-{kind}-p{pid}s{start_ticks(pid) or 0}-"


def sweep_orphans(folder: str | Path | None = None) -> list[Path]:
    """Remove the temporary folders of ours in `folder` (default: the system's temp folder) whose owner
    process is gone; return the folders removed. Errors (a folder removed meanwhile, no permission)
    leave that folder alone: a sweep never stops a command."""
    root = Path(folder if folder is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or (uid is not None and info.st_uid != uid):
            continue
        if _alive(int(match[1]), int(match[2])):
            continue
        path = Path(entry.path)
        try:
            shutil.rmtree(path)
        except OSError:
            continue
        removed.append(path)
    return removed
