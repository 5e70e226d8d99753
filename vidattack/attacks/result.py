"""What an attack returns: the typed result, its per-video split, and the norms measured on it."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from vidattack.threat import ratio


@dataclass
class AttackResult:
    """What an attack returns. Tensors have a leading batch dimension N."""

    adversarial: Tensor
    success: Tensor
    clean_labels: Tensor
    adversarial_labels: Tensor
    target: Tensor | None
    clean_log_probs: Tensor
    adversarial_log_probs: Tensor
    queries: int
    norms: dict[str, list[float]]
    threat: dict[str, Any]
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    video_queries: list[int] = field(default_factory=list)  # (N,) queries of each video
    video_histories: list[list[dict[str, float]]] = field(default_factory=list)  # (N,) when per video
    per_video_info: frozenset[str] = frozenset()  # dotted `info` keys holding one entry per video
    precision: str = "fp32"  # the arithmetic of the attack's steps (`vidattack.precision`); judged in fp32

    def split(self) -> list[AttackResult]:
        """One result per video, each as if its video had been attacked alone: tensors sliced, queries
        and history per video, and the `per_video_info` entries of `info` sliced to that video."""
        n = int(self.adversarial.shape[0])
        if n == 1:
            return [self]
        parts = []
        for i in range(n):
            sl = slice(i, i + 1)
            hist = self.video_histories[i] if self.video_histories else list(self.history)
            parts.append(
                dataclasses.replace(
                    self,
                    adversarial=self.adversarial[sl],
                    success=self.success[sl],
                    clean_labels=self.clean_labels[sl],
                    adversarial_labels=self.adversarial_labels[sl],
                    target=None if self.target is None else self.target[sl],
                    clean_log_probs=self.clean_log_probs[sl],
                    adversarial_log_probs=self.adversarial_log_probs[sl],
                    queries=self.video_queries[i] if self.video_queries else self.queries,
                    norms={k: v[sl] for k, v in self.norms.items()},
                    info=_info_of_video(self.info, self.per_video_info, i),
                    history=hist,
                    video_queries=[self.video_queries[i]] if self.video_queries else [],
                    video_histories=[hist] if self.video_histories else [],
                )
            )
        return parts


def _info_of_video(info: dict[str, Any], keys: frozenset[str], i: int, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in info.items():
        path = f"{prefix}{k}"
        if path in keys and isinstance(v, list):
            out[k] = v[i : i + 1]
        elif isinstance(v, dict):
            out[k] = _info_of_video(v, keys, i, path + ".")
        else:
            out[k] = copy.deepcopy(v)
    return out


def measure_norms(x_adv: Tensor, x: Tensor) -> dict[str, list[float]]:
    """Per-sample norms of a perturbation in [0, 1] units (the report's `perturbation` basics)."""
    d = (x_adv - x).reshape(x.shape[0], -1)
    r = ratio(x_adv, x).reshape(x.shape[0], -1)
    return {
        "linf": d.abs().amax(dim=1).tolist(),
        "l2": d.norm(dim=1).tolist(),
        "map": d.abs().mean(dim=1).tolist(),
        "ratio_max": r.amax(dim=1).tolist(),
    }
