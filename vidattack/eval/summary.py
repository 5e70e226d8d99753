"""The summary of an eval: one row per configuration, as data, CSV, JSON, Markdown and a plot.

Definitions (per configuration, over its records with `status: ok`):

- clean accuracy: share of videos whose clean prediction is the true label;
- robust accuracy: share whose adversarial prediction is the true label (a video the model already
  got wrong counts as not robust, attacked or not);
- attack success rate: share of successes among the correctly classified videos (untargeted: the
  label changed; targeted: the prediction is the target); success after encode, the same judged on the
  written file decoded again; success after delivery (configurations with `--delivery` only), the same
  judged on the lossy delivery copy of the written file decoded again (issue #17: whether the attack
  survives an ordinary encode);
- queries, Linf, L2 and MAP (mean absolute perturbation, all in /255 units), ratio_max (the largest
  max(x'/x, x/x') of a pixel: MultAV's measure; infinite when a black pixel changes) and frames
  perturbed, each a mean over the attacked videos;
- seconds per video over all videos.

`delivery` names the configuration's delivery encode (`h264:crf=23`; None without). The printed table
and `summary.md` show it and the "after delivery" rate only when some row has a delivery, so a grid
without one prints as it always did; CSV and JSON always hold both fields. `robust_to` names the
encode the attacks were optimised through (`h264:crf=18-28`, `--robust-to`; None without), shown the
same way: a column only when some row has one, and in the plot's legend.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vidattack.errors import UsageError
from vidattack.eval.records import RESULTS_NAME, latest, read_configs, read_records, write_configs
from vidattack.eval.rows import (  # re-exported: the names users import from here
    SummaryRow,
    format_cell,
    line_name,
    shown_columns,
)
from vidattack.files import write_atomic
from vidattack.pipeline.report import to_json

SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PLOT_PNG = "robust_accuracy.png"


def _mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _rate(flags: Sequence[bool | None]) -> float | None:
    known = [bool(f) for f in flags if f is not None]
    return sum(known) / len(known) if known else None


def _ratio(value: Any) -> float:
    # records hold an unbounded ratio (a black pixel changed) as null, as reports do
    return math.inf if value is None else float(value)


def _sort_key(row: SummaryRow) -> tuple[Any, ...]:
    bv = row.budget_value
    return (
        row.attack,
        bv is None,
        bv if bv is not None else 0.0,
        row.budget or "",
        row.target,
        row.settings,
        row.robust_to or "",
        row.delivery or "",
    )


def summarize(
    records: Iterable[dict[str, Any]], configs: Mapping[str, Mapping[str, Any]]
) -> list[SummaryRow]:
    """One row per configuration with records, sorted by attack, budget and target mode.

    `configs` maps keys to `Config.to_dict()` (as `configs.json` holds them); a record whose key is
    missing there still gets a row, described from its own fields.
    """
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in latest(records):
        by_key.setdefault(r["key"], []).append(r)
    rows = []
    for key, recs in by_key.items():
        cfg = configs.get(key, {})
        ok = [r for r in recs if r.get("status", "ok") == "ok"]
        correct = [r for r in ok if r["clean"] == r["label"]]
        attacked = [r for r in ok if r.get("attacked", True)]
        queries = [float(r["queries"]) for r in attacked]
        # --alpha and --steps are options of their own but settings of the attack all the same: two
        # runs that differ only in them must not print as the same row
        common = {k: cfg[k] for k in ("alpha", "steps") if cfg.get(k) is not None}
        settings = {**(cfg.get("settings") or {}), **common}
        budget = cfg.get("budget", recs[0].get("budget"))
        rows.append(
            SummaryRow(
                key=key,
                attack=str(cfg.get("attack", recs[0].get("attack", "?"))),
                budget=budget,
                budget_value=cfg.get("budget_value"),
                target=str(cfg.get("target", recs[0].get("target_mode", "?"))),
                settings=" ".join(f"{k}={v}" for k, v in sorted(settings.items())),
                robust_to=cfg.get("robust_to"),
                delivery=cfg.get("delivery"),
                videos=len(ok),
                failed=len(recs) - len(ok),
                clean_accuracy=_rate([r["clean"] == r["label"] for r in ok]),
                robust_accuracy=_rate([r["adversarial"] == r["label"] for r in ok]),
                attack_success_rate=_rate([r["success"] for r in correct]),
                success_after_encode=_rate([r.get("success_after_encode") for r in correct]),
                success_after_delivery=_rate([r.get("success_after_delivery") for r in correct]),
                mean_queries=_mean(queries),
                median_queries=float(statistics.median(queries)) if queries else None,
                mean_linf=_mean([float(r["linf"]) for r in attacked]),
                mean_l2=_mean([float(r["l2"]) for r in attacked]),
                mean_map=_mean([float(r["map"]) for r in attacked]),
                mean_ratio_max=_mean([_ratio(r["ratio_max"]) for r in attacked if "ratio_max" in r]),
                mean_frames_perturbed=_mean(
                    [float(r["frames_perturbed"]) for r in attacked if "frames_perturbed" in r]
                ),
                seconds_per_video=_mean([float(r["seconds"]) for r in ok if "seconds" in r]),
            )
        )
    return sorted(rows, key=_sort_key)


def to_csv(rows: Sequence[SummaryRow]) -> str:
    """The rows as CSV, every field, rates as fractions."""
    buf = io.StringIO()
    fields = list(SummaryRow.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.to_dict().items()})
    return buf.getvalue()


def to_markdown(rows: Sequence[SummaryRow]) -> str:
    """The rows as a Markdown table (the printed columns; the delivery and robust-to ones when a row
    has one)."""
    columns = shown_columns(rows)
    head = "| " + " | ".join(h for _, h, _ in columns) + " |"
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(format_cell(r, n, f) for n, _, f in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def plot_robust_accuracy(rows: Sequence[SummaryRow], path: str | Path, *, title: str = "") -> Path | None:
    """Robust accuracy against budget, one line per attack (and target mode); None if no row has a
    numeric budget. Attacks whose budgets live on different scales (eps vs MultAV's eps_m) share the
    axis as given; the legend names each (with its robust-to and delivery encodes). `title` names
    what was attacked (`run_eval`: the model and the dataset); it is drawn as plain text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.budget_value is None or r.robust_accuracy is None:
            continue
        points = lines.setdefault(line_name(r), [])
        points.append((r.budget_value, r.robust_accuracy))
        if r.clean_accuracy is not None and not any(b == 0 for b, _ in points):
            points.append((0.0, r.clean_accuracy))  # budget 0: the clean accuracy, where each line starts
    if not lines:
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        # Pixel budgets read best in /255; a grid with ratio budgets (MultAV's eps_m) stays as given.
        scale = 255.0 if all(p[0] <= 1 for pts in lines.values() for p in pts) else 1.0
        for name, pts in sorted(lines.items()):
            pts.sort()
            ax.plot([p[0] * scale for p in pts], [p[1] * 100 for p in pts], marker="o", label=name)
        # ticks only at the budgets that were run (and 0): no 2.25 between a run at 2 and one at 4
        ticks = sorted({p[0] * scale for pts in lines.values() for p in pts})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(
            "budget (/255; 0: clean accuracy)" if scale == 255.0 else "budget (each attack's own units)"
        )
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        # parse_math off: a dataset path with `$` in it is text, not mathtext
        title = title or "Robust accuracy against budget"
        ax.set_title(_fit(title, 72), parse_math=False)
        fig.tight_layout()
        buf = io.BytesIO()
        # the whole title also in the PNG's text (Title), where a long one is not cut
        fig.savefig(buf, format="png", dpi=110, metadata={"Title": title})
    finally:
        plt.close(fig)
    write_atomic(path, buf.getvalue())
    return path


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def write_summary(out_dir: str | Path, rows: Sequence[SummaryRow], *, title: str = "") -> dict[str, Path]:
    """Write `summary.csv`, `summary.json`, `summary.md`, `robust_accuracy.png` (when a budget is
    numeric, titled `title`) and `summary.html` (the page, `vidattack.page.eval_page`) into
    `out_dir`, each atomically; return what was written by kind."""
    out = Path(out_dir)
    files = {
        "csv": out / SUMMARY_CSV,
        "json": out / SUMMARY_JSON,
        "md": out / SUMMARY_MD,
    }
    write_atomic(files["csv"], to_csv(rows).encode())
    write_atomic(files["json"], (to_json({"rows": [r.to_dict() for r in rows]}) + "\n").encode())
    write_atomic(files["md"], to_markdown(rows).encode())
    plot = plot_robust_accuracy(rows, out / PLOT_PNG, title=title)
    if plot is not None:
        files["plot"] = plot
    # the page reads the records on disk (its worst and best cases), as every page reads reports
    from vidattack.page.eval_page import write_summary_page

    results = out / RESULTS_NAME
    records = read_records(results) if results.is_file() else []
    files["html"] = write_summary_page(out, rows, latest(records), plot=plot)
    return files


def summarize_dir(out_dir: str | Path, *, write: bool = True) -> list[SummaryRow]:
    """The summary of the records in `OUT/results.jsonl` (written next to it unless `write=False`)."""
    out = Path(out_dir)
    rows = summarize(read_records(out / RESULTS_NAME), read_configs(out))
    if write:
        write_summary(out, rows)
    return rows


def merge(dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> list[SummaryRow]:
    """Combine the records of several eval folders (shards) into one summary.

    With `out_dir`, the merged records, configurations and summary files are written there (the
    records as one `results.jsonl`, the last record of each (configuration, video) pair).
    """
    if not dirs:
        raise UsageError("expected at least one eval folder to merge")
    records: list[dict[str, Any]] = []
    configs: dict[str, dict[str, Any]] = {}
    for d in dirs:
        path = Path(d)
        if not (path / RESULTS_NAME).exists():
            raise UsageError(f"{path} holds no {RESULTS_NAME}: is it an eval output folder?")
        records += read_records(path / RESULTS_NAME, strict=True)
        for key, cfg in read_configs(path).items():
            configs.setdefault(key, cfg)
    merged = latest(records)
    rows = summarize(merged, configs)
    if out_dir is not None:
        out = Path(out_dir)
        lines = "".join(to_json(r, indent=None) + "\n" for r in merged)
        write_atomic(out / RESULTS_NAME, lines.encode())
        write_configs(out, configs.values())
        write_summary(out, rows)
    return rows
