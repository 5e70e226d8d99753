"""One lock per output set, so two runs writing into one folder can never interleave their files.

A job holds an exclusive `flock` on `.S.lock` beside its outputs (S the output name) from before it
checks that its outputs are free until after its report is written. A second process that wants the
same set fails at once with `OutputLockedError` (it never waits: an attack can take an hour). The lock
file is removed on release; a process that opened it just before is told by the inode check in
`acquire` and opens the new one. A process killed with SIGKILL releases its lock with its last file
descriptor, so a lock can never be left held by the dead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vidattack.errors import OutputLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not protected from each other
    fcntl = None  # type: ignore[assignment]


def lock_path(folder: Path, name: str) -> Path:
    """The lock file of the output set named `name` in `folder`."""
    return folder / f".{name}.lock"


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def acquire(path: Path) -> int | None:
    """Take the exclusive lock at `path` (created; its folder must exist); return its descriptor.

    Raises `OutputLockedError` when another process holds it.
    """
    if fcntl is None:  # pragma: no cover
        return None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(
                f"another vidattack run is writing these outputs{_holder(path)}; wait for it to finish, "
                "or choose another --out or --name"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us may have removed the file after we opened it: then we locked a file
        # nobody else will ever see, so start again on the one now at `path`.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def release(path: Path, fd: int | None) -> None:
    """Remove the lock file and drop the lock (in this order, see `acquire`)."""
    if fd is None:  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        os.unlink(path)
    os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the lock at `path` for the block."""
    fd = acquire(path)
    try:
        yield
    finally:
        release(path, fd)
