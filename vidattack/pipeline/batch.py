"""Many inputs: files, folders (recursively) and `-` (paths on stdin), processed one by one.

A failing item never stops the batch: each yields either its report or an error record.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vidattack.errors import VidattackError

log = logging.getLogger("vidattack")


@dataclass(frozen=True)
class Item:
    """One input of a batch: its path and the output stem it gets (unique within the batch)."""

    path: Path
    stem: str


def _video_files(folder: Path, exclude: Path | None) -> list[Path]:
    from vidattack.video import is_video_path

    found = []
    for p in sorted(folder.rglob("*")):
        if exclude is not None and exclude in p.parents:
            continue  # never attack our own outputs when the output folder is inside the input folder
        if p.is_file() and is_video_path(p) and not p.name.startswith("."):
            found.append(p)
    return found


def expand_inputs(
    inputs: Iterable[str], *, stdin: TextIO | None = None, exclude: Path | None = None
) -> list[Item]:
    """Turn command-line inputs into items: folders are searched recursively for video files, `-` reads
    newline-separated paths from stdin. Missing paths are kept (they fail later, as one item each).
    Stems are made unique (`clip`, `clip-2`, ...) so two `clip.mp4` in different folders don't collide.
    """
    paths: list[Path] = []
    excl = exclude.resolve() if exclude is not None else None
    for raw in inputs:
        if raw == "-":
            stream = stdin if stdin is not None else sys.stdin
            paths.extend(Path(line.strip()) for line in stream if line.strip())
            continue
        p = Path(raw)
        if p.is_dir():
            paths.extend(_video_files(p.resolve(), excl))
        else:
            paths.append(p)
    items, used = [], set[str]()
    for p in paths:
        base = p.name.split(".")[0] or p.stem or "video"
        stem, n = base, 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        items.append(Item(p, stem))
    return items


def error_record(item: Item, error: BaseException) -> dict[str, Any]:
    """What a failed item reports: its input and one line of error."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return {"input": str(item.path), "status": "error", "error": message, "error_type": type(error).__name__}


def run_batch(items: list[Item], job: Callable[[Item], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Run `job` on each item; a `VidattackError` (or any unexpected error) becomes an error record."""
    for item in items:
        try:
            yield job(item)
        except VidattackError as e:
            yield error_record(item, e)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # a bug or an unforeseen file: report it, keep the batch going
            log.debug("unexpected error on %s", item.path, exc_info=True)
            yield error_record(item, e)
