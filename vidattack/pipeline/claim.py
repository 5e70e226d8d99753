"""How a job claims its output set: the set's lock, `--overwrite`, `--resume`, and cleanup on failure.

A job claims its output set (`claim`): it takes the set's lock (`locks.py`), removes temp files
left by killed runs, and then either finds the set finished by the same job (`--resume`: skip it),
or checks that it may write it (free, `--overwrite`, or `--resume` redoing an incomplete set). If the
job fails or is interrupted, every file of the set it created or replaced is removed again (every
file of `vidattack.pipeline.outputs.OUTPUT_FILES`, the delivery copy included), so a folder holds only
whole output sets, each ending with its report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from vidattack.errors import OutputExistsError, VidattackError
from vidattack.pipeline.locks import acquire, release
from vidattack.pipeline.outputs import OUTPUT_FILES, TEMP_NAME, Outputs

log = logging.getLogger("vidattack")


def temp_leftovers(outputs: Outputs) -> list[Path]:
    """Temp files of this set's outputs left by killed runs (`.S.adv.mp4.tmp-1a2b3c4d.mp4`)."""
    folder = outputs.folder
    names = {p.name for p in outputs.all()}
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        n = entry.name
        if not n.startswith("."):
            continue
        m = TEMP_NAME.search(n)
        if m is not None and n[1 : m.start()] in names and entry.is_file(follow_symlinks=False):
            found.append(Path(entry.path))
    return found


def finished_report(outputs: Outputs, key: str) -> dict[str, Any] | None:
    """The set's report when it was written by the same job and every chosen output is there, else None."""
    try:
        report = json.loads(outputs.report.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or (report.get("job") or {}).get("key") != key:
        return None
    # the files the report lists (roles of `OUTPUT_FILES`) may have been written relative to another
    # working folder, so they are looked up by name in this set's folder
    roles = report.get("outputs") or {}
    known = {f.role for f in OUTPUT_FILES}
    listed = [outputs.folder / Path(str(p)).name for role, p in roles.items() if role in known]
    if not all(p.exists() for p in (*outputs.required(), *listed)):
        return None
    return report


def _report_key(outputs: Outputs) -> str | None:
    try:
        report = json.loads(outputs.report.read_text())
        return str((report.get("job") or {}).get("key"))
    except (OSError, ValueError, AttributeError):
        return None


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


class Claim:
    """A claimed output set, held (its lock taken) until `release`.

    `done` is the finished report when `--resume` found one (nothing to do). A claim may be taken in
    one thread and released in another (the batch engine decodes in one worker and writes in another):
    the lock belongs to the open file, not to a thread. Used as a context manager, it is released at
    the end of the block, as failed when the block raises.
    """

    def __init__(self, outputs: Outputs, fd: int | None, done: dict[str, Any] | None = None) -> None:
        self.outputs, self.done = outputs, done
        self._fd: int | None = fd
        self._held = True
        self._before = {p: _identity(p) for p in outputs.all()}

    def release(self, *, failed: bool = False) -> None:
        """Drop the lock; when `failed`, first remove every file of the set that was created or replaced
        since the claim (a folder holds only whole output sets). Releasing twice does nothing."""
        if not self._held:
            return
        self._held = False
        try:
            if failed:
                for p, was in self._before.items():
                    now = _identity(p)
                    if now is not None and now != was:
                        with contextlib.suppress(OSError):
                            p.unlink()
        finally:
            release(self.outputs.lock, self._fd)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.release(failed=exc_type is not None)


def claim(outputs: Outputs, *, key: str, overwrite: bool = False, resume: bool = False) -> Claim:
    """Take `outputs`' lock and decide whether the job may write them; the caller releases the claim.

    Without `overwrite` or `resume`, an existing output is an `OutputExistsError`. With `resume`, a set
    finished by the same job (`key`) is returned as `Claim.done`; a set without a report (a killed
    run's) or with the same job's report is redone; a report of another job is refused unless
    `overwrite`. Temp files left by killed runs are removed. `Claim.release(failed=True)` removes every
    file of the set created or replaced since the claim.
    """
    folder = outputs.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidattackError(f"cannot create the output folder {folder}: {e.strerror}") from None
    fd = acquire(outputs.lock)
    try:
        for tmp in temp_leftovers(outputs):
            log.info("removing %s, left by an interrupted run", tmp)
            tmp.unlink(missing_ok=True)
        if resume:
            done = finished_report(outputs, key)
            if done is not None:
                return Claim(outputs, fd, done)
        existing = [p for p in outputs.chosen() if os.path.lexists(p)]  # a dangling link counts
        if existing and not overwrite:
            if not resume:
                raise OutputExistsError(
                    f"{existing[0]} exists (use --overwrite to replace it, or --resume to continue an "
                    "interrupted batch)"
                )
            if outputs.report.exists() and _report_key(outputs) != key:
                raise OutputExistsError(
                    f"{outputs.report} reports another attack, model, seed or input; use --overwrite to "
                    "replace it, or --name to write beside it"
                )
        return Claim(outputs, fd)
    except BaseException:
        release(outputs.lock, fd)
        raise
