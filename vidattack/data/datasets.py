"""Labelled video data sets for `vidattack eval` (and `vidattack train`): one item per video.

A DATASET is written in one of three forms:

- a folder with one subfolder per class; the subfolder's name is the label and every video file in
  it (at any depth) is an item whose id is its path relative to the folder (`move_left/a.mp4`);
- a manifest, `.csv` (`path,label`, a header line optional) or `.jsonl` (`{"path": ..., "label": ...}`
  per line): the label is a class name or index, relative paths are resolved against the manifest's
  folder, and the id is the path as written;
- `synthetic:N` (or `synthetic:N:SEED`): N fresh clips per class from the package's own generator
  (`vidattack.data.synthetic`), clip for clip the same as `make_dataset(N, seed=SEED)`, with ids
  `synthetic-SEED-00000`... Clips are rendered when an item is loaded, so a shard or a remote worker
  renders only its own.

Labels are checked against the model's labels when the data set is loaded, with errors that name the
file and line, so a typo fails before the first attack rather than in the middle of a run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vidattack.errors import DatasetError, UsageError
from vidattack.files import is_hidden
from vidattack.text import shorten

if TYPE_CHECKING:
    from vidattack.video import Video

__all__ = ["Dataset", "DatasetError", "Item", "load_dataset", "manifest_labels", "parse_shard", "shard_of"]

# The seed of `synthetic:N` when none is given. The bundled models were trained on seed 20240611 and
# their held-out accuracy measured on 777; this one is neither, so an eval measures unseen clips.
DEFAULT_SYNTHETIC_SEED = 13
SYNTHETIC_FPS = 25

# `synthetic:N` makes N items per class up front (clips are rendered when loaded): a bound keeps a typo
# such as synthetic:99999999999999999999 from asking torch for an impossible tensor.
MAX_SYNTHETIC_PER_CLASS = 1_000_000

_SYNTHETIC = re.compile(r"^synthetic:(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class Item:
    """One labelled video of a data set.

    Exactly one of `path` (a video file), `frames` (decoded `(T, H, W, 3)` uint8) or `clip_seed` (a
    synthetic clip of generator class `synthetic_class`, rendered on demand) says where its pixels
    come from. `label` is an index into the
    data set's `labels` (the model's labels); `source` says where the item was declared, for messages.
    """

    id: str
    label: int
    path: Path | None = None
    frames: Tensor | None = field(default=None, compare=False, repr=False)
    clip_seed: int | None = None
    synthetic_class: int = 0
    synthetic_frames: int = 16
    synthetic_size: int = 112
    source: str = ""

    def load_video(self) -> Video:
        """The item as a `Video` (decoded from its file, or wrapped with a constant 25 fps timing)."""
        from vidattack.video import Video, load_video

        if self.path is not None:
            return load_video(self.path)
        frames = self.load_frames()
        return Video(
            frames=frames,
            pts=list(range(frames.shape[0])),
            time_base=Fraction(1, SYNTHETIC_FPS),
            rate=Fraction(SYNTHETIC_FPS),
        )

    def load_frames(self) -> Tensor:
        """The item's frames `(T, H, W, 3)` uint8."""
        if self.frames is not None:
            return self.frames
        if self.clip_seed is not None:
            from vidattack.data.synthetic import make_clip

            return make_clip(
                self.synthetic_class,
                seed=self.clip_seed,
                frames=self.synthetic_frames,
                size=self.synthetic_size,
            )
        return self.load_video().frames


@dataclass(frozen=True)
class Dataset:
    """A labelled list of videos; `labels` are the model's class names the items' labels index."""

    spec: str
    items: tuple[Item, ...]
    labels: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    def shard(self, index: int, count: int) -> Dataset:
        """Shard `index` of `count` (1-based, as `--shard K/N` reads): the items whose id hashes to it.

        The hash is of the id alone, so an item stays in its shard when others are added or reordered,
        and every item is in exactly one shard.
        """
        if count < 1 or not 1 <= index <= count:
            raise UsageError(f"expected a shard K/N with 1 <= K <= N, got {index}/{count}")
        mine = tuple(it for it in self.items if shard_of(it.id, count) == index)
        return replace(self, items=mine, spec=f"{self.spec} (shard {index}/{count})")


def shard_of(item_id: str, count: int) -> int:
    """The 1-based shard of `count` that the item `item_id` belongs to (a stable hash, not `hash()`)."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` -> `(K, N)`, checked."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"expected a shard as K/N (for example 1/4), got {text!r}")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"expected a shard K/N with 1 <= K <= N, got {text!r}")
    return k, n


def _resolve_label(value: object, labels: Sequence[str], where: str) -> int:
    """A manifest or folder label (name, case-insensitive name, or index) -> index into `labels`."""
    if isinstance(value, bool):
        raise DatasetError(f"{where}: expected a label name or index, got {shorten(repr(value))}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        if isinstance(value, str) and len(value.strip()) > 9:  # int() of a 1 MB digit string is slow
            raise DatasetError(
                f"{where}: expected a class index in [0, {len(labels) - 1}], got {shorten(value)}"
            )
        idx = int(value)
        if not 0 <= idx < len(labels):
            raise DatasetError(
                f"{where}: expected a class index in [0, {len(labels) - 1}], got {shorten(idx)}"
            )
        return idx
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: expected a label name or index, got {shorten(repr(value))}")
    name = value.strip()
    if name in labels:
        return list(labels).index(name)
    lowered = [lab.lower() for lab in labels]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    import difflib

    # difflib is quadratic: a 1 MB label would take minutes to compare
    close = difflib.get_close_matches(name, list(labels), n=3) if len(name) <= 200 else []
    hint = f" (did you mean {', '.join(close)}?)" if close else f" (the model has {len(labels)} labels)"
    raise DatasetError(f"{where}: the model has no label {shorten(repr(name))}{hint}")


def load_dataset(
    spec: str | Path,
    labels: Sequence[str],
    *,
    synthetic_frames: int = 16,
    synthetic_size: int = 112,
) -> Dataset:
    """Read DATASET `spec` (a class folder, a `.csv`/`.jsonl` manifest, or `synthetic:N[:SEED]`).

    `labels` are the model's class names; every item's label must be one of them. Video files are
    checked to exist but not decoded (that happens per item, in whichever process runs it).

    Raises:
        DatasetError: an unknown form, a missing file, a malformed line or an unknown label; the
            message names the file and line.
    """
    labels = tuple(labels)
    text = str(spec)
    m = _SYNTHETIC.match(text)
    if m:
        return _synthetic(text, int(m.group(1)), m.group(2), labels, synthetic_frames, synthetic_size)
    if text.startswith("synthetic"):
        raise DatasetError(
            f"expected synthetic:N or synthetic:N:SEED (N clips per class), got {shorten(text)!r}"
        )
    path = Path(text)
    try:
        if path.is_dir():
            return _folder(path, labels)
        exists = path.exists()
    except OSError as e:  # a name too long for the file system, a folder that cannot be listed
        raise DatasetError(f"{shorten(text)}: cannot be read ({e.strerror or e})") from None
    if not exists:
        raise DatasetError(
            f"no such data set: {shorten(text)} (expected a folder, a .csv/.jsonl manifest or synthetic:N)"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _manifest(path, labels, _csv_rows(path))
    if suffix in (".jsonl", ".ndjson"):
        return _manifest(path, labels, _jsonl_rows(path))
    raise DatasetError(f"expected a folder, a .csv or .jsonl manifest or synthetic:N, got {shorten(text)}")


def _synthetic(
    text: str, per_class: int, seed_text: str | None, labels: tuple[str, ...], frames: int, size: int
) -> Dataset:
    from vidattack.data.synthetic import CLASSES

    if not 1 <= per_class <= MAX_SYNTHETIC_PER_CLASS:
        raise DatasetError(
            f"expected synthetic:N with 1 <= N <= {MAX_SYNTHETIC_PER_CLASS} clips per class, got {shorten(text)}"
        )
    seed = int(seed_text) if seed_text is not None else DEFAULT_SYNTHETIC_SEED
    if seed >= 2**63:  # torch's generators take a signed 64-bit seed
        raise DatasetError(f"expected synthetic:N:SEED with SEED < 2**63, got {shorten(text)}")
    model_index = {}
    for name in CLASSES:
        model_index[name] = _resolve_label(name, labels, f"{text}: class {name!r} of the synthetic generator")
    n = per_class * len(CLASSES)
    # The same draw as `make_dataset`, so `synthetic:N:S` is `make_dataset(N, seed=S)` clip for clip.
    clip_seeds = torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(seed))
    items = tuple(
        Item(
            id=f"synthetic-{seed}-{i:05d}",
            label=model_index[CLASSES[i % len(CLASSES)]],
            clip_seed=int(clip_seeds[i]),
            synthetic_class=i % len(CLASSES),
            synthetic_frames=frames,
            synthetic_size=size,
            source=f"{text} item {i}",
        )
        for i in range(n)
    )
    return Dataset(spec=text, items=items, labels=labels)


def _folder(root: Path, labels: tuple[str, ...]) -> Dataset:
    from vidattack.video import is_video_path

    items: list[Item] = []
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: expected one subfolder per class, found none")
    for folder in classes:
        idx = _resolve_label(folder.name, labels, f"{folder}")
        for f in sorted(folder.rglob("*")):
            if f.is_file() and is_video_path(f) and not is_hidden(f.relative_to(folder)):
                rel = f.relative_to(root).as_posix()
                items.append(Item(id=rel, label=idx, path=f, source=str(f)))
    if not items:
        raise DatasetError(f"{root}: found no video files in its class subfolders")
    return Dataset(spec=str(root), items=tuple(items), labels=labels)


def _manifest_lines(path: Path) -> list[str]:
    """The manifest's lines as text: UTF-8, with or without the byte order mark spreadsheet programs
    write. Any other encoding is refused naming the line (guessing one would misread names)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        lineno = data[: e.start].count(b"\n") + 1
        raise DatasetError(
            f"{path}:{lineno}: not UTF-8 (byte 0x{data[e.start]:02x}); save the manifest as UTF-8"
        ) from None
    return text.splitlines(keepends=True)


def _csv_rows(path: Path) -> Iterator[tuple[int, object, object]]:
    lines = _manifest_lines(path)
    reader = csv.reader(lines)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a field over the csv module's limit (131072), a NUL byte
            raise DatasetError(
                f"{path}:{reader.line_num}: not a CSV line a manifest can hold ({e})"
            ) from None
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
            continue
        if len(row) != 2:
            raise DatasetError(f"{path}:{lineno}: expected two columns path,label, got {len(row)}")
        yield lineno, row[0].strip(), row[1].strip()


def _jsonl_rows(path: Path) -> Iterator[tuple[int, object, object]]:
    for lineno, line in enumerate(_manifest_lines(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(
                f"{path}:{lineno}: expected a JSON object, got invalid JSON ({e.msg})"
            ) from None
        except (ValueError, RecursionError):  # nested past the parser, an integer of 5000 digits
            raise DatasetError(
                f"{path}:{lineno}: expected a JSON object, got one nested too deep or a number too long"
            ) from None
        if not isinstance(obj, dict) or "path" not in obj or "label" not in obj:
            raise DatasetError(f'{path}:{lineno}: expected an object with "path" and "label"')
        yield lineno, obj["path"], obj["label"]


def manifest_labels(path: Path) -> list[str]:
    """The distinct labels a `.csv` or `.jsonl` manifest names, sorted and as written (not resolved
    against any model's labels): what `vidattack train` names the classes of a fresh network.

    Raises:
        DatasetError: a malformed line, naming the file and line, as `load_dataset` would.
    """
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    return sorted({str(label) for _, _, label in rows})


def _manifest(path: Path, labels: tuple[str, ...], rows: Iterator[tuple[int, object, object]]) -> Dataset:
    base = path.parent
    items: list[Item] = []
    seen: dict[Path, tuple[int, int]] = {}  # the file, resolved -> (line, label) where it was first listed
    for lineno, raw_path, raw_label in rows:
        where = f"{path}:{lineno}"
        if not isinstance(raw_path, str) or not raw_path:
            raise DatasetError(f"{where}: expected a video path, got {shorten(repr(raw_path))}")
        if "\0" in raw_path:
            raise DatasetError(f"{where}: expected a video path, got one with a NUL byte")
        file = Path(raw_path)
        file = file if file.is_absolute() else base / file
        try:
            is_file = file.is_file()
            # `./sub/x`, `sub//x` and `sub/../sub/x` are one video: compare where the names lead
            real = file.resolve()
        except OSError as e:  # a name too long for the file system
            raise DatasetError(f"{where}: {shorten(raw_path)}: {e.strerror or e}") from None
        if not is_file:
            raise DatasetError(f"{where}: no such video file {shorten(raw_path)}")
        label = _resolve_label(raw_label, labels, where)
        if real in seen:
            first, first_label = seen[real]
            conflict = (
                f" with another label ({labels[first_label]} there, {labels[label]} here)"
                if first_label != label
                else ""
            )
            raise DatasetError(
                f"{where}: {shorten(raw_path)} is listed twice (first on line {first}){conflict}"
            )
        seen[real] = (lineno, label)
        items.append(Item(id=raw_path, label=label, path=file, source=where))
    if not items:
        raise DatasetError(f"{path}: the manifest lists no videos")
    return Dataset(spec=str(path), items=tuple(items), labels=labels)
