"""Files on disk: atomic writes, content hashes and downloads, one copy of each for the whole package.

Everything vidattack writes (videos, reports, plots, weights) goes through a hidden temp file beside
the destination that is renamed over it only when complete (`os.replace` is atomic within one
folder), so a reader or a crash never sees half a file, and a file's presence means it is whole.
Temp files are created with the mode an ordinary `open()` gives (`0o666 & ~umask`): `mkstemp`'s
`0o600` would make reports unreadable to the group that can read the videos beside them.

Nothing here knows about models or videos; callers turn the `OSError`/`ValueError` raised here into
their own error messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from vidattack.text import literal

log = logging.getLogger(__name__)

#: Read and hash in blocks of this size: large enough to be fast, small enough for any checkpoint.
CHUNK = 1 << 20
#: Seconds a download may wait on the network (connect or read) before giving up. urllib waits
#: forever by default, so an unreachable host would hang a command for minutes.
DOWNLOAD_TIMEOUT_S = 15.0

_CREATE_MODE = 0o666  # the umask takes away what the user does not want others to have


def temp_path_beside(path: str | os.PathLike[str]) -> Path:
    """A fresh hidden name in `path`'s folder, ending in `path`'s suffix (encoders pick formats by it).

    The name is not reserved: whoever writes it should create it exclusively (see `write_atomic`).
    """
    p = Path(path)
    return p.with_name(f".{p.name}.tmp-{secrets.token_hex(4)}{p.suffix}")


class WriteFailed(OSError):
    """Writing a file failed (a full disk, a read-only folder, a quota); `str()` names the file the
    user asked for (`cannot write out/a.adv.mp4: No space left on device`), not the hidden temp file
    beside it, nor nothing at all, as an `OSError` raised by `write()` does."""

    def __str__(self) -> str:
        return f"cannot write {literal(self.filename)}: {self.strerror}"


def write_failed(error: OSError, path: str | os.PathLike[str]) -> WriteFailed:
    """`error` as a `WriteFailed` naming `path` (kept as it is when it already is one)."""
    if isinstance(error, WriteFailed):
        return error
    return WriteFailed(error.errno, error.strerror or str(error), os.fspath(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path` for a writer that needs a file name (PyAV, safetensors).

    When the block ends normally the temp file replaces `path` atomically; when it raises, the temp
    file is removed (if the writer created it) and the exception propagates; an `OSError` (a full disk)
    as a `WriteFailed` naming `path`. The folder must exist.
    """
    dst = Path(path)
    tmp = temp_path_beside(dst)
    try:
        yield tmp
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_failed(e, dst) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically, creating its folder if needed; return the path.

    The file gets the mode `open(path, "wb")` would give (`0o666` less the umask).
    """
    dst = Path(path)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        # O_EXCL: never write through a file (or link) someone else put at the temp name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _CREATE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return dst


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes as 64 hex digits, read in blocks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    path: str | os.PathLike[str],
    *,
    sha256_prefix: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Fetch `url` to `path` atomically (creating its folder); return the path.

    `timeout` bounds each network wait, so an offline machine fails within seconds. With
    `sha256_prefix` (torchvision puts one in its weight file names), a file whose hash does not start
    with it is discarded.

    Raises:
        OSError: the network or the disk failed (`urllib.error.URLError` and timeouts are OSErrors).
        ValueError: the downloaded bytes do not match `sha256_prefix`.
    """
    dst = Path(path)
    log.info("downloading %s to %s", url, dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with (
        urllib.request.urlopen(url, timeout=timeout) as response,
        atomic_path(dst) as tmp,
        open(tmp, "xb") as out,
    ):
        while block := response.read(CHUNK):
            digest.update(block)
            out.write(block)
        # checked inside the block, so a mismatching file is removed rather than put in place
        if sha256_prefix and not digest.hexdigest().startswith(sha256_prefix.lower()):
            raise ValueError(
                f"expected the SHA-256 of {url} to start with {sha256_prefix}, got {digest.hexdigest()}"
            )
    return dst


#: What a path that is not a regular file is, in words (for errors about inputs, checkpoints, labels).
FILE_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def file_kind(mode: int) -> str | None:
    """None for a regular file's `st_mode`; else what it is ("a folder", "a FIFO", ...). Reading a FIFO
    or a device blocks or never ends, so callers refuse these before opening them."""
    if stat.S_ISREG(mode):
        return None
    return FILE_KINDS.get(stat.S_IFMT(mode), "a special file")


def read_small_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Raises `ValueError` naming what is wrong
    (not a regular file, too large) and `OSError` when it cannot be read."""
    info = os.stat(path)
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise ValueError(f"is {kind}, not a regular file")
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)  # bounded even if the file grows while it is read
    if len(data) > limit:
        raise ValueError(f"is larger than {limit // 2**20} MiB")
    return data


def is_hidden(relative: str | os.PathLike[str]) -> bool:
    """Whether a path found by searching a folder (given relative to it) is hidden: its name or a
    folder on the way starts with a dot (`.cache/x.mp4`). Searches leave these out, as `ls` does."""
    return any(part.startswith(".") for part in Path(relative).parts)
