"""Opening an input file safely: refuse what is not a regular, readable, non-empty file before FFmpeg
sees it, name the path once in a form that stays on one line, and open it with PyAV.

Why check before `av.open`: FFmpeg opens a FIFO and blocks until a writer appears, reads `/dev/zero`
forever, and reports a symlink loop as "No such file or directory". `os.stat` tells those apart.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import stat
from collections.abc import Iterator

import av
import av.logging

from vidattack.errors import BadVideoError
from vidattack.files import file_kind
from vidattack.text import literal

PathLike = str | os.PathLike[str]


def display_path(path: PathLike | bytes) -> str:
    """`path` as one printable line (`vidattack.text.literal`): control characters (newline, tab,
    escape) and bytes that are not valid UTF-8 are written as escapes (`\\n`, `\\xff`), everything else
    as is (unicode stays readable)."""
    return literal(path)


def reason(error: BaseException) -> str:
    """The useful part of an exception for a one-line message.

    `av.FFmpegError` and `OSError` repeat the errno and the file name in `str()`; their `strerror` is
    the part a user can act on.
    """
    strerror = getattr(error, "strerror", None)
    return str(strerror) if strerror else (str(error) or type(error).__name__)


def unnameable(path: PathLike) -> str | None:
    """Why `path` cannot name any file (None when it can): a NUL byte, or a name or path longer than
    the file system allows. A batch turns such an input into one error record instead of stopping on
    it (`os.stat` raises for these where it says "no such file" for a name that could exist)."""
    if "\0" in os.fsdecode(path):
        return "the path holds a NUL byte, which no file name can"
    try:
        os.lstat(path)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            size = len(os.fsencode(os.path.basename(path)))
            return f"the file name is too long for the file system ({size} bytes; at most 255 are allowed)"
    except ValueError:
        return "the path cannot be a file name"
    return None


def check_input_file(path: PathLike) -> int:
    """Raise `BadVideoError` unless `path` is a regular, readable, non-empty file; return its size.

    Each message names the path once and says what is wrong in words a user can act on.
    """
    shown = display_path(path)
    try:
        info = os.stat(path)  # follows symlinks: a link to a good clip is a good clip
    except OSError as e:
        raise BadVideoError(_stat_failure(path, shown, e)) from None
    if stat.S_ISDIR(info.st_mode):
        raise BadVideoError(f"{shown} is a folder, not a video")
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise BadVideoError(f"{shown} is not a regular file ({kind})")
    if info.st_size == 0:
        raise BadVideoError(f"{shown} is empty (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise BadVideoError(f"{shown} cannot be read: {reason(e)}") from None
    return info.st_size


def _stat_failure(path: PathLike, shown: str, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return f"{shown} is a symlink loop"
    if error.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"{shown} is a symlink to a missing file ({display_path(os.readlink(path))})"
        return f"no such file: {shown}"
    if error.errno == errno.ENOTDIR:
        return f"no such file: {shown} (a part of the path is not a folder)"
    return f"{shown} cannot be read: {reason(error)}"


@contextlib.contextmanager
def ffmpeg_logging(verbose: bool) -> Iterator[None]:
    """At `verbose`, route FFmpeg's log to Python logging ("libav.*") for the block, then restore it.

    FFmpeg's log is off by default; on it, the real reason behind a terse error ("moov atom not found")
    reaches the user.
    """
    if not verbose:
        yield
        return
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        yield
    finally:
        av.logging.set_level(previous)


def open_input(path: PathLike) -> av.container.InputContainer:
    """Check `path` (`check_input_file`) and open it with PyAV, or raise `BadVideoError`.

    PyAV wants a `str`; `os.fsdecode` keeps undecodable bytes of a name as surrogates, which PyAV
    encodes back to the same bytes.
    """
    check_input_file(path)
    try:
        return av.open(os.fsdecode(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, OSError, ValueError, UnicodeError) as e:
        raise BadVideoError(f"{display_path(path)} is not a readable video: {reason(e)}") from None


def as_path(path: PathLike) -> pathlib.Path:
    """`path` as a `pathlib.Path` (undecodable bytes kept as surrogates, as `os.fsdecode` does)."""
    return pathlib.Path(os.fsdecode(path))
