"""Many inputs: files, folders (recursively) and `-` (paths on stdin), processed one by one.

A failing item never stops the batch: each yields either its report or an error record. Inputs are
expanded once, before the first job (`expand_inputs`), so their names can be checked for collisions
up front (`vidattack.pipeline.outputs.plan_outputs`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vidattack.errors import VidattackError

if TYPE_CHECKING:
    from vidattack.pipeline.signals import InterruptGuard

log = logging.getLogger("vidattack")


@dataclass(frozen=True)
class Input:
    """One input of a batch: its path, its full stem (`clip.2020.mp4` -> `clip.2020`) and, for a file
    found by searching a folder input, the subfolder it was found in (mirrored under the output folder)."""

    path: Path
    stem: str
    subdir: Path = field(default=Path())
    #: Why this input cannot be a job, known when inputs are expanded (a folder holding no videos).
    error: str | None = None


def _video_files(folder: Path, exclude: Path | None, skip_own: bool) -> list[tuple[Path, Path]]:
    """(file, its folder relative to `folder`) for every video file under `folder`, sorted."""
    from vidattack.files import is_hidden
    from vidattack.pipeline.outputs import is_own_output
    from vidattack.video import is_video_path

    found = []
    for p in sorted(folder.rglob("*")):
        if exclude is not None and (p == exclude or exclude in p.parents):
            continue  # never attack our own outputs when the output folder is inside the input folder
        if is_hidden(p.relative_to(folder)) or not is_video_path(p) or (skip_own and is_own_output(p)):
            continue
        if p.is_file():
            found.append((p, p.parent.relative_to(folder)))
    return found


def read_paths(stream: IO[Any], *, null: bool = False) -> list[Path]:
    """Paths from a stream, one per line (only the newline is removed: trailing spaces are part of a
    name) or, with `null`, separated by NUL bytes (`find -print0`), in which a name may hold newlines.
    Bytes that are not UTF-8 are kept (`os.fsdecode`), so every file name can be given. Lines ending in
    CR LF (written on Windows) lose the CR as well."""
    raw = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    data = raw if isinstance(raw, bytes) else os.fsencode(raw)
    parts = data.split(b"\0") if null else [p.removesuffix(b"\r") for p in data.split(b"\n")]
    return [Path(os.fsdecode(p)) for p in parts if p]


def expand_inputs(
    inputs: Iterable[str],
    *,
    stdin: IO[Any] | None = None,
    exclude: Path | None = None,
    null: bool = False,
    skip_own_outputs: bool = False,
) -> list[Input]:
    """Turn command-line inputs into items: folders are searched recursively for video files (hidden
    ones left out), `-` reads paths from stdin (`read_paths`; NUL-separated with `null`). Missing paths
    are kept (they fail later, as one item each). An input given twice is kept once.

    Files found by searching (in folders and on stdin) inside `exclude` (the output folder) are left
    out, and so, with `skip_own_outputs`, are files named like our own outputs (`*.adv.mp4`,
    `*.heatmap.mp4`, temp files): a rerun never attacks the previous run's results. A file named on the
    command line itself is always kept.
    """
    from vidattack.pipeline.outputs import is_own_output
    from vidattack.video.paths import unnameable

    excl = exclude.resolve() if exclude is not None else None
    items: list[Input] = []
    seen: set[str] = set()
    skipped = {"inside the output folder": 0, "named like this tool's outputs": 0}

    def add(p: Path, subdir: Path = Path()) -> None:
        problem = unnameable(p)
        if problem is not None:  # one error record; the rest of the batch runs
            items.append(Input(p, "video", subdir, error=problem))
            return
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            items.append(Input(p, p.stem or p.name or "video", subdir))

    for raw in inputs:
        if raw == "-":
            for p in read_paths(stdin if stdin is not None else sys.stdin, null=null):
                if unnameable(p) is not None:
                    add(p)
                    continue
                inside = excl is not None and (excl == p.resolve() or excl in p.resolve().parents)
                if inside or (skip_own_outputs and is_own_output(p)):
                    skipped["inside the output folder" if inside else "named like this tool's outputs"] += 1
                    continue
                add(p)
            continue
        p = Path(raw)
        if unnameable(p) is None and p.is_dir():
            found = _video_files(p.resolve(), excl, skip_own_outputs)
            for f, sub in found:
                add(p / sub / f.name, sub)
            if not found:
                items.append(
                    Input(p, p.name, error="this folder holds no video files (searched recursively)")
                )
        else:
            add(p)
    if any(skipped.values()):  # said by default: a path that vanishes silently looks like a bug
        why = ", ".join(f"{n} {reason}" for reason, n in skipped.items() if n)
        log.warning("left out %d paths from stdin (%s): results of a run are never attacked again",
                    sum(skipped.values()), why)  # fmt: skip
    return items


def error_record(item: Input, error: BaseException) -> dict[str, Any]:
    """What a failed item reports: its input and one line of error."""
    message = str(error).splitlines()[0].strip() if str(error).strip() else ""
    return {
        "input": str(item.path),
        "status": "error",
        "error": message or type(error).__name__,
        "error_type": type(error).__name__,
    }


def run_batch(
    items: list[Input], job: Callable[[Input], dict[str, Any]], *, guard: InterruptGuard | None = None
) -> Iterator[dict[str, Any]]:
    """Run `job` on each item; a `VidattackError` (or any unexpected error) becomes an error record.

    With `guard`, SIGINT and SIGTERM interrupt the job that runs (raising `Interrupted` out of this
    generator) and a signal between jobs stops the batch before the next one.
    """
    for item in items:
        if guard is not None:
            guard.check()
        if item.error is not None:
            yield {
                "input": str(item.path),
                "status": "error",
                "error": item.error,
                "error_type": "BadVideoError",
            }
            continue
        try:
            if guard is not None:
                with guard.interruptible():
                    record = job(item)
            else:
                record = job(item)
        except VidattackError as e:
            record = error_record(item, e)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # a bug or an unforeseen file: report it, keep the batch going
            log.debug("unexpected error on %s", item.path, exc_info=True)
            record = error_record(item, e)
        yield record
