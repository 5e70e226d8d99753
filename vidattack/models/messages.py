"""Wording shared by the model loaders' errors and notes: every message is one line, lists at most a
few key names, and says where a bad value came from."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidattack.errors import BadCheckpointError

#: How many key names an error or note lists before "...".
SHOWN = 5


def first_line(e: BaseException) -> str:
    """The first line of an exception's text (torch's messages run to pages), or its type's name."""
    text = str(e).strip() or type(e).__name__
    if "weights_only" in text and "Weights only load failed" in text:
        # torch's page of advice ends in "weights_only set to False will likely succeed": never
        # repeat it (a full pickle load runs whatever code the file holds); the cause is on its own line
        cause = re.search(r"WeightsUnpickler error: (.*)", text)
        return f"it holds more than tensors ({cause.group(1).strip() if cause else 'refused'})"
    return text.splitlines()[0].strip()


def few(keys: Sequence[str]) -> str:
    """The first `SHOWN` keys, comma-separated, with `...` when there are more."""
    shown = ", ".join(keys[:SHOWN])
    return shown + (", ..." if len(keys) > SHOWN else "")


def short(obj: Any) -> str:
    """`repr(obj)` cut to 60 characters."""
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def file_name(path: Path | None) -> str:
    """How a message names a checkpoint file (downloaded weights may have no path to show)."""
    return str(path) if path is not None else "the checkpoint"


def parse_json(text: str, where: str) -> Any:
    """`json.loads(text)`, or a `BadCheckpointError` saying which metadata (`where`) is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadCheckpointError(f"expected JSON in {where}: {e}") from e
