"""Class names: read from a `--labels` file or list, decoded from checkpoint metadata, checked against
the model's class count, and chosen between the caller's, the checkpoint's and defaults."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidattack.errors import BadCheckpointError
from vidattack.files import read_small_file
from vidattack.models.architectures import Architecture
from vidattack.models.messages import parse_json, short

#: Metadata entries that hold class names, in the order they are looked for.
#: A labels file is a few kilobytes (Kinetics-700: 15 KB); anything far larger is not one.
MAX_LABELS_BYTES = 16 * 2**20

LABEL_KEYS = ("labels", "classes", "categories", "class_names")


def read_labels_arg(labels: str | Path | Sequence[str]) -> list[str]:
    """The class names `--labels` gives: a file (one name per line, or JSON) or a list of names."""
    if isinstance(labels, str | Path):
        path = Path(labels).expanduser()
        try:
            text = read_small_file(path, MAX_LABELS_BYTES).decode("utf-8")
        except OSError as e:
            raise BadCheckpointError(f"cannot read labels file {path}: {e.strerror or e}") from None
        except ValueError as e:  # not a regular file, too large, or not UTF-8
            raise BadCheckpointError(f"labels file {path} {e}") from None
        if text.lstrip().startswith(("[", "{")):
            return labels_from_obj(parse_json(text, f"labels file {path}"), f"labels file {path}")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [str(label) for label in labels]


def labels_from_obj(obj: Any, where: str) -> list[str]:
    """Labels from a list, `{index: name}` or `{name: index}` (both seen in Kinetics label files)."""
    if isinstance(obj, list | tuple) and all(isinstance(x, str) for x in obj):
        return list(obj)
    if isinstance(obj, Mapping) and obj:
        if all(isinstance(v, int) for v in obj.values()):
            pairs = sorted((int(v), str(k)) for k, v in obj.items())
        elif all(str(k).isdigit() for k in obj):
            pairs = sorted((int(k), str(v)) for k, v in obj.items())
        else:
            pairs = []
        if pairs and [i for i, _ in pairs] == list(range(len(pairs))):
            return [name for _, name in pairs]
    raise BadCheckpointError(f"expected a list of class names in {where}, got {short(obj)}")


def fit_labels(labels: list[str], k: int, where: str) -> list[str]:
    """`labels` if there is one per class of a `k`-class model, else an error naming `where`."""
    if len(labels) != k:
        raise BadCheckpointError(
            f"expected {k} labels (the model has {k} classes), got {len(labels)} from {where}"
        )
    return labels


def choose_labels(
    requested: list[str] | None,
    found: list[str] | None,
    found_in: str,
    k: int,
    arch: Architecture | None,
    notes: list[str],
) -> list[str]:
    """The labels of a `k`-class model: the caller's (`requested`), else the checkpoint's (`found`,
    read from `found_in`), else Kinetics-400's for a 400-class torchvision architecture, else
    `class_0 ..`; a guess is said in `notes`."""
    if requested is not None:
        return fit_labels(requested, k, "--labels")
    if found is not None:
        return fit_labels(found, k, found_in)
    if arch is not None and k == 400:
        notes.append("labels: Kinetics-400 class names (400 outputs, no labels in the checkpoint)")
        return arch.kinetics_labels()
    notes.append(f"no labels found: classes are named class_0 .. class_{k - 1}")
    return [f"class_{i}" for i in range(k)]
