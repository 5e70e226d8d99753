"""One configuration's totals as a row (`SummaryRow`), and the row as table text: the columns shown,
each cell's format and the plot's legend name. Shared by the summary files (`vidattack.eval.summary`),
the CLI's table and the summary page (`vidattack.page.eval_page`), so none of them imports another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SummaryRow:
    """The totals of one configuration. Rates are in [0, 1]; None where nothing was counted."""

    key: str
    attack: str
    budget: str | None
    budget_value: float | None
    target: str
    settings: str
    robust_to: str | None
    delivery: str | None
    videos: int
    failed: int
    clean_accuracy: float | None
    robust_accuracy: float | None
    attack_success_rate: float | None
    success_after_encode: float | None
    success_after_delivery: float | None
    mean_queries: float | None
    median_queries: float | None
    mean_linf: float | None
    mean_l2: float | None
    mean_map: float | None
    mean_ratio_max: float | None
    mean_frames_perturbed: float | None
    seconds_per_video: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# (field, column header, format) for the printed table, the Markdown and the CSV header order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("attack", "attack", "{}"),
    ("budget", "eps", "{}"),
    ("target", "target", "{}"),
    ("settings", "settings", "{}"),
    ("robust_to", "robust to", "{}"),
    ("delivery", "delivery", "{}"),
    ("videos", "videos", "{}"),
    ("clean_accuracy", "clean acc", "{:.1%}"),
    ("robust_accuracy", "robust acc", "{:.1%}"),
    ("attack_success_rate", "success", "{:.1%}"),
    ("success_after_encode", "after encode", "{:.1%}"),
    ("success_after_delivery", "after delivery", "{:.1%}"),
    ("mean_queries", "mean queries", "{:.1f}"),
    ("median_queries", "median queries", "{:.1f}"),
    ("mean_linf", "Linf /255", "{:.2f}"),
    ("mean_l2", "L2 /255", "{:.1f}"),
    ("mean_map", "MAP /255", "{:.3f}"),
    ("seconds_per_video", "s/video", "{:.2f}"),
)


# Columns shown only when some row has a delivery, and only when some row has a robust-to encode
# (`shown_columns`): a grid without them prints as it did before they existed.
DELIVERY_COLUMNS = frozenset({"delivery", "success_after_delivery"})
ROBUST_COLUMNS = frozenset({"robust_to"})


def shown_columns(rows: Sequence[SummaryRow]) -> list[tuple[str, str, str]]:
    """The `COLUMNS` that say something about `rows`: the delivery ones only when a row has one, the
    robust-to one only when a row has one."""
    hidden: set[str] = set()
    if not any(r.delivery is not None or r.success_after_delivery is not None for r in rows):
        hidden |= DELIVERY_COLUMNS
    if not any(r.robust_to is not None for r in rows):
        hidden |= ROBUST_COLUMNS
    return [c for c in COLUMNS if c[0] not in hidden]


def format_cell(row: SummaryRow, name: str, fmt: str) -> str:
    """One table cell as text (`-` for nothing counted)."""
    value = getattr(row, name)
    if value is None or value == "":
        return "-"
    return fmt.format(value)


def line_name(row: SummaryRow) -> str:
    """The plot's legend entry of a row: everything but the budget that tells its configuration
    apart (`pgd-linf (random) [steps=2] (robust to h264:crf=18-28) (h264:crf=23)`)."""
    name = row.attack if row.target == "untargeted" else f"{row.attack} ({row.target})"
    if row.settings:
        name += f" [{row.settings}]"
    if row.robust_to:
        name += f" (robust to {row.robust_to})"
    if row.delivery:
        name += f" ({row.delivery})"
    return name
