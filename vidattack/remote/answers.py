"""What a deployed classifier answers, read as untrusted data.

Accepted forms (HuggingFace's video-classification task, cloud APIs, internal services):

- a list of label/score pairs, every class or the top k: `[{"label": "flash", "score": 0.91}, ...]`;
- a label only: `{"label": "flash"}` or `[{"label": "flash"}]`.

An answer is at most `MAX_ANSWER_BYTES`, UTF-8 JSON and nothing else; labels are non-empty strings of at
most `MAX_LABEL_CHARS` characters kept as data (never markup); scores are finite numbers in [0, 1] whose
sum may not exceed 1 by more than rounding. Anything else raises `BadAnswerError` naming the target, so a
garbage answer is one line, never a traceback.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from vidattack.errors import VidattackError

MAX_ANSWER_BYTES = 1 << 20  # a full answer over 10k classes is ~500 kB
MAX_LABEL_CHARS = 200
_SUM_SLACK = 1e-3  # services round their scores; 0.3334 x 3 must pass


class BadAnswerError(VidattackError):
    """The target answered something that is not a classification (exit 1; names the target)."""


@dataclass(frozen=True)
class Answer:
    """One parsed answer: `labels` best first, `scores` aligned with them (None for a label-only answer).

    `complete` is True when the scores cover every class the service has (they sum to 1 within
    rounding); a top-k answer is incomplete.
    """

    labels: tuple[str, ...]
    scores: tuple[float, ...] | None

    @property
    def top(self) -> str:
        """The label the service ranks first."""
        return self.labels[0]

    @property
    def complete(self) -> bool:
        return self.scores is not None and abs(sum(self.scores) - 1.0) <= _SUM_SLACK

    def to_json(self) -> dict[str, Any]:
        """The answer as the query log stores it (the parsed form, not the raw bytes)."""
        return {"labels": list(self.labels), "scores": None if self.scores is None else list(self.scores)}

    @classmethod
    def from_json(cls, data: Any, target: str) -> Answer:
        """An answer read back from the query log (validated again: the log is a file like any other)."""
        if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
            raise BadAnswerError(f"{target}: expected a logged answer with labels, got {type(data).__name__}")
        scores = data.get("scores")
        if scores is None:
            return _validated([{"label": lab} for lab in data["labels"]], target)
        if not isinstance(scores, list) or len(scores) != len(data["labels"]):
            raise BadAnswerError(f"{target}: expected one logged score per label")
        return _validated(
            [{"label": a, "score": s} for a, s in zip(data["labels"], scores, strict=True)], target
        )


def parse_answer(raw: bytes, target: str) -> Answer:
    """The answer in `raw` (a response body or a command's stdout); `target` names the service in errors."""
    if len(raw) > MAX_ANSWER_BYTES:
        raise BadAnswerError(f"{target}: expected an answer of at most {MAX_ANSWER_BYTES} bytes, got more")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadAnswerError(f"{target}: expected a JSON answer, got {_preview(raw)}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise BadAnswerError(
            f"{target}: expected a list of label/score objects or a label, got {_kind(data)}"
        )
    return _validated(data, target)


def _validated(items: list[Any], target: str) -> Answer:
    labels: list[str] = []
    scores: list[float] = []
    for item in items:
        if not isinstance(item, dict) or "label" not in item:
            raise BadAnswerError(f"{target}: expected objects with a label, got {_kind(item)}")
        labels.append(_label(item["label"], target))
        if "score" in item:
            scores.append(_score(item["score"], target))
    if len(set(labels)) != len(labels):
        raise BadAnswerError(f"{target}: expected each label once in an answer, got a repeated label")
    if scores and len(scores) != len(labels):
        raise BadAnswerError(f"{target}: expected a score with every label or with none")
    if not scores:
        if len(labels) != 1:
            raise BadAnswerError(f"{target}: expected scores with a list of {len(labels)} labels")
        return Answer(tuple(labels), None)
    if sum(scores) > 1.0 + _SUM_SLACK:
        raise BadAnswerError(f"{target}: expected scores summing to at most 1, got {sum(scores):.4g}")
    order = sorted(range(len(labels)), key=lambda i: -scores[i])  # stable: ties keep the service's order
    return Answer(tuple(labels[i] for i in order), tuple(scores[i] for i in order))


def _label(value: Any, target: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadAnswerError(f"{target}: expected a non-empty string label, got {_kind(value)}")
    if len(value) > MAX_LABEL_CHARS or not value.isprintable():
        raise BadAnswerError(
            f"{target}: expected a printable label of at most {MAX_LABEL_CHARS} characters, got {value[:40]!r}"
        )
    return value


def _score(value: Any, target: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadAnswerError(f"{target}: expected a number as score, got {_kind(value)}")
    score = float(value)
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        raise BadAnswerError(f"{target}: expected scores in [0, 1], got {score!r}")
    return score


def _no_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default; a score service has no business sending them
    raise ValueError(f"non-JSON constant {name}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _preview(raw: bytes) -> str:
    # repr of at most 40 bytes: a garbage answer shows as data, whatever it holds
    return repr(raw[:40]) + (" ..." if len(raw) > 40 else "")
