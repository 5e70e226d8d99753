"""Small PNG charts for reports: per-frame perturbation with frame-level predictions, and attack curves."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidattack.report import write_atomic


def _figure(width: float = 7.0, height: float = 3.2) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only: never open a window, work without a display
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())


def per_frame_chart(
    path: Path,
    per_frame_map: Sequence[float],
    *,
    frame_predictions: dict[str, Any] | None = None,
    title: str = "",
) -> None:
    """Bar chart of mean absolute perturbation per frame (x 255, in 8-bit levels).

    With frame-level predictions (CNN+RNN models), a strip under the bars shows each sampled frame's
    clean and adversarial class, the sparse-attack paper's way of showing that clean frames after the
    perturbed ones flip too.
    """
    fig = _figure(7.0, 3.8 if frame_predictions else 3.0)
    if frame_predictions:
        ax, strip = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    else:
        ax, strip = fig.subplots(1, 1), None
    t = len(per_frame_map)
    ax.bar(range(t), [m * 255 for m in per_frame_map], color="#d1495b", width=0.8)
    ax.set_ylabel("MAP (levels)")
    ax.set_title(title or "perturbation per frame", fontsize=9)
    ax.set_xlim(-0.6, t - 0.4)
    if strip is not None and frame_predictions:
        frames = frame_predictions["frames"]
        clean, adv = frame_predictions["clean"], frame_predictions["adversarial"]
        classes = sorted(set(clean) | set(adv))
        colours = {c: f"C{i % 10}" for i, c in enumerate(classes)}
        for row, labels in ((1, clean), (0, adv)):
            strip.scatter(frames, [row] * len(frames), c=[colours[c] for c in labels], marker="s", s=40)
        strip.set_yticks([0, 1], ["adversarial", "clean"], fontsize=8)
        strip.set_ylim(-0.7, 1.7)
        strip.set_xlabel("frame")
        handles = [strip.scatter([], [], c=colours[c], marker="s", label=c) for c in classes]
        strip.legend(
            handles=handles,
            fontsize=7,
            ncol=min(len(classes), 5),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.55),
        )
    else:
        ax.set_xlabel("frame")
    _save(fig, path)


def history_chart(path: Path, history: Sequence[dict[str, float]], *, title: str = "") -> bool:
    """Plot an attack's history: every recorded series against queries (or steps). False if nothing to plot."""
    if len(history) < 2:
        return False
    x_key = "queries" if all("queries" in row for row in history) else "step"
    if not all(x_key in row for row in history):
        return False
    series = [k for k in history[0] if k not in ("queries", "step") and all(k in row for row in history)]
    if not series:
        return False
    fig = _figure(6.5, 1.9 * len(series) + 0.6)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    xs = [row[x_key] for row in history]
    for ax, key in zip(axes, series, strict=True):
        ax.plot(xs, [row[key] for row in history], color="#00798c", lw=1.4)
        ax.set_ylabel(key, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title(title or "attack progress", fontsize=9)
    axes[-1].set_xlabel(x_key)
    _save(fig, path)
    return True
