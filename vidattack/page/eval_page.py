"""`summary.html`: the page of an eval, drawn from its summary rows and records.

It shows the summary table (sortable, the same columns as `summary.md`), the robust-accuracy plot
beside it, and per configuration its worst and best cases for the attack: the videos it failed on,
and those it fooled with the smallest change. Cases link to the kept adversarial videos when the eval
kept them (`--save-outputs`: `KEY/ID.adv.*`), else name the video and the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vidattack.page.html import document, esc, href, number, write_page

SUMMARY_HTML = "summary.html"

#: How many cases of each kind a configuration lists.
CASES = 5


def render_summary_page(
    out_dir: Path, rows: Sequence[Any], records: Sequence[Mapping[str, Any]], *, plot: Path | None = None
) -> str:
    """The HTML of an eval's summary page. `rows` are `vidattack.eval.rows.SummaryRow`s, `records`
    the records they were summarised from, `plot` the robust-accuracy picture (when drawn)."""
    from vidattack.eval.rows import format_cell, shown_columns

    out_dir = Path(out_dir)
    columns = shown_columns(rows)
    head = "".join(f'<th scope="col"><button type="button">{esc(h)}</button></th>' for _, h, _ in columns)
    body = []
    for r in rows:
        cells = []
        for name, _, fmt in columns:
            # sort by the number behind the text (the budget `2/255` by its value)
            value = r.budget_value if name == "budget" else getattr(r, name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            v = f' data-v="{esc(value)}"' if numeric else ""
            cells.append(f"<td{v}>{esc(format_cell(r, name, fmt))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    parts = [
        f"<h1>vidattack eval: {esc(out_dir.name)}</h1>",
        f'<p class="totals">{len(rows)} configuration(s), {len({str(x.get("video")) for x in records})} '
        "video(s)</p>",
        f'<table class="sortable" id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table>",
    ]
    if plot is not None and plot.is_file():
        parts.append(
            f'<h2>Robust accuracy</h2><figure><img src="{href(plot, out_dir)}" alt="robust accuracy against '
            'budget" style="max-width:720px;width:100%"></figure>'
        )
    parts.append("<h2>Worst and best cases</h2>")
    parts.extend(_cases(out_dir, r, records) for r in rows)
    links = ["summary.md", "summary.csv", "summary.json", "results.jsonl"]
    parts.append(
        '<p class="links">'
        + "".join(
            f'<a href="{href(out_dir / n, out_dir)}">{esc(n)}</a>' for n in links if (out_dir / n).is_file()
        )
        + "</p>"
    )
    return document(f"vidattack eval: {out_dir.name}", "\n".join(parts))


def write_summary_page(
    out_dir: Path, rows: Sequence[Any], records: Sequence[Mapping[str, Any]], *, plot: Path | None = None
) -> Path:
    """Write `out_dir/summary.html` atomically; return its path."""
    out_dir = Path(out_dir)
    return write_page(out_dir / SUMMARY_HTML, render_summary_page(out_dir, rows, records, plot=plot))


def _cases(out_dir: Path, row: Any, records: Sequence[Mapping[str, Any]]) -> str:
    from vidattack.eval.rows import line_name

    mine = [x for x in records if x.get("key") == row.key and x.get("status") == "ok" and x.get("attacked")]
    # judged where the configuration's attack ends: after delivery when it has one
    judged = "success_after_delivery" if row.delivery else "success_after_encode"
    failed = [x for x in mine if not x.get(judged)]
    fooled = sorted((x for x in mine if x.get(judged)), key=lambda x: float(x.get("map") or 0.0))
    when = "after delivery" if row.delivery else "after encode"
    budget = f" at {row.budget}" if row.budget else ""
    return (
        f"<h3>{esc(line_name(row) + budget)}</h3>"
        + _case_list(out_dir, row.key, f"not fooled {when} ({len(failed)})", failed[:CASES])
        + _case_list(
            out_dir,
            row.key,
            f"fooled {when} with the smallest mean change ({len(fooled)} fooled)",
            fooled[:CASES],
        )
    )


def _case_list(out_dir: Path, key: str, title: str, cases: Sequence[Mapping[str, Any]]) -> str:
    from vidattack.data.names import kept_name

    if not cases:
        return f'<p class="muted">{esc(title)}: none</p>'
    items = []
    for x in cases:
        video = str(x.get("video"))
        kept = sorted((out_dir / key).glob(f"{kept_name(video)}.adv.*")) if (out_dir / key).is_dir() else []
        name = f'<a href="{href(kept[0], out_dir)}">{esc(video)}</a>' if kept else esc(video)
        items.append(
            f"<li>{name}: label {esc(x.get('label_name'))}, mean change {number(x.get('map'))}/255, "
            f"Linf {number(x.get('linf'))}/255, queries {number(x.get('queries'))}</li>"
        )
    return f"<p>{esc(title)}:</p><ul>{''.join(items)}</ul>"
