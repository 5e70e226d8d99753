"""`index.html`: one page for a `perturb` run, drawn from the `S.report.json` files in its folder.

The page has a totals line, one sortable and filterable table row per video, and one section per
video (opened from its row) with the clean and adversarial previews playing side by side in sync, the
heatmap video, the contact sheet and plots, the predictions before and after the attack, after the
written file was decoded again and after delivery, the budget and perturbation figures, and links to
the report and the lossless result. Sections are closed `<details>` whose bodies wait in inert
`<template>`s until opened: nothing of them is laid out or loaded before, so a run of 1,000 videos
opens quickly (`benchmarks/page_load.py`).

`PageUpdater` redraws the page while a batch runs (at most every few seconds, and once at the end);
while running, the page reloads itself in the browser.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vidattack.page.html import ForeignPageError, document, esc, href, levels, number, write_page, yes_no
from vidattack.page.preview import preview_paths
from vidattack.text import literal

log = logging.getLogger("vidattack")
T = TypeVar("T")

INDEX_HTML = "index.html"

#: Params shown in 8-bit levels rather than as plain numbers.
_LEVEL_PARAMS = frozenset({"eps", "alpha", "bound"})


@dataclass(frozen=True)
class Entry:
    """One finished video: its report (parsed) and where its files are."""

    report_path: Path
    report: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.report_path.parent

    @property
    def name(self) -> str:
        """S, the name the set's files share."""
        return self.report_path.name.removesuffix(".report.json")

    def file(self, suffix: str) -> Path | None:
        """The set's file with this suffix (`.adv.mp4`), when it is on disk."""
        p = self.folder / f"{self.name}{suffix}"
        return p if p.is_file() else None

    @property
    def input_name(self) -> str:
        return Path(str(self.report.get("input") or self.name)).name

    @property
    def delivery(self) -> dict[str, Any] | None:
        part = self.report.get("delivery")
        return part if isinstance(part, dict) else None

    @property
    def final_success(self) -> bool | None:
        """Whether the attack survived everything it went through: delivery when there was one, else
        the written file."""
        if self.delivery is not None:
            return bool(self.delivery.get("success_after_delivery"))
        value = self.report.get("success_after_encode")
        return None if value is None else bool(value)


def find_reports(folder: Path) -> list[Path]:
    """Every finished job's report under `folder` (subfolders too), sorted; hidden temp files left out."""
    found = [p for p in folder.rglob("*.report.json") if not p.name.startswith(".")]
    return sorted(found)


def load_entries(folder: Path) -> tuple[list[Entry], list[Path]]:
    """The readable reports under `folder`, and the paths of those that could not be read."""
    entries, unreadable = [], []
    for path in find_reports(folder):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            unreadable.append(path)
            continue
        if isinstance(data, dict) and isinstance(data.get("clean"), dict):
            entries.append(Entry(path, data))
        else:
            unreadable.append(path)
    return entries, unreadable


def render_run_page(folder: Path, *, expected: int | None = None, refresh_s: int | None = None) -> str:
    """The HTML of `folder`'s run page. `expected`: how many videos the run will have (a running batch
    says "12 of 19 done"); `refresh_s`: make the browser reload the page (while the run goes on)."""
    folder = Path(folder)
    entries, unreadable = load_entries(folder)
    delivered = any(e.delivery is not None for e in entries)
    parts = [_header(folder, entries, expected, refresh_s is not None, delivered)]
    if unreadable:
        names = ", ".join(esc(p.name) for p in unreadable[:5])
        parts.append(f'<p class="note">{len(unreadable)} report(s) could not be read: {names}</p>')
    parts.append(_table(entries, folder, delivered))
    parts.append(
        '<h2>Videos</h2><noscript><p class="note">Each video\'s section needs JavaScript to open; its '
        "files are beside this page.</p></noscript>"
    )
    parts.extend(_section(i, e, folder) for i, e in enumerate(entries))
    return document(f"vidattack perturb: {folder.name}", "\n".join(parts), refresh_s=refresh_s)


def write_run_page(
    folder: Path, *, expected: int | None = None, running: bool = False, empty: bool = True
) -> Path | None:
    """Write `folder/index.html` atomically from the reports there; return its path. `running`: the
    batch goes on (the page says so and reloads itself every 10 s). Without `empty`, a folder with no
    report gets no page (None): a batch that finished nothing leaves its folder as it found it."""
    folder = Path(folder)
    if not empty and not find_reports(folder):
        return None
    text = render_run_page(folder, expected=expected, refresh_s=10 if running else None)
    return write_page(folder / INDEX_HTML, text)


class PageUpdater:
    """Keeps a run's `index.html` current while its batch runs: `video_done()` after each finished
    video redraws the page when `min_interval` seconds have passed since the last drawing (reading
    every report each time would be quadratic in a batch of thousands), `close()` draws it a last time.
    """

    def __init__(self, folder: Path, total: int, *, min_interval: float = 3.0) -> None:
        self.folder, self.total, self.min_interval = Path(folder), total, min_interval
        self._last, self._took = float("-inf"), 0.0
        self.path = self.folder / INDEX_HTML

    def video_done(self) -> None:
        """A video finished: redraw unless the page was drawn moments ago. The wait grows with the
        time a drawing takes (ten times it), so the page never takes more than a tenth of the time
        of a batch whose reports are many and slow to read."""
        now = time.monotonic()
        if now - self._last >= max(self.min_interval, 10 * self._took):
            self._draw(running=True)
            self._last = time.monotonic()
            self._took = self._last - now

    def close(self) -> Path | None:
        """The batch ended (finished or interrupted): draw the final page, without reloading; returns
        its path (None when it could not be written)."""
        return self._draw(running=False)

    def follow(self, records: Iterable[T]) -> Iterator[T]:
        """`records` as they come, the page redrawn after each and once more when they end (however
        they end: an interrupted batch still gets a page of what it finished)."""
        try:
            for record in records:
                yield record
                self.video_done()
        finally:
            self.close()

    def _draw(self, *, running: bool) -> Path | None:
        # The page is a view of the results, not a result: failing to draw it (a full disk) is
        # logged and never stops or fails the batch.
        try:
            return write_run_page(self.folder, expected=self.total, running=running, empty=False)
        except OSError as e:
            why = str(e) if isinstance(e, ForeignPageError) else f"{literal(self.path)}: {e.strerror or e}"
            log.warning("run page not written: %s", why)
            return None


# -- the parts of the page ---------------------------------------------------------------------------


def _header(
    folder: Path, entries: Sequence[Entry], expected: int | None, running: bool, delivered: bool
) -> str:
    n = len(entries)
    fooled = sum(bool(e.report.get("success_after_encode")) for e in entries)
    attacks = sorted({str(e.report.get("attack", {}).get("name")) for e in entries})
    models = sorted({str(e.report.get("model", {}).get("name")) for e in entries})
    totals = f"{fooled} of {n} fooled (judged on the written file)"
    if delivered:
        survived = sum(bool(e.final_success) for e in entries if e.delivery is not None)
        with_delivery = sum(e.delivery is not None for e in entries)
        totals += f"; {survived} of {with_delivery} still fooled after delivery"
    out = [f"<h1>vidattack perturb: {esc(folder.name)}</h1>"]
    if running:
        done = f"{n} of {expected} videos done" if expected else f"{n} videos done"
        out.append(f'<p class="banner">Running: {done}; this page reloads every 10 s.</p>')
    out.append(f'<p class="totals">{esc(totals)}</p>')
    out.append(
        f'<p class="muted">attack {esc(", ".join(attacks) or "-")} · model {esc(", ".join(models) or "-")}'
        f" · folder {esc(folder)}</p>"
    )
    return "\n".join(out)


def _table(entries: Sequence[Entry], folder: Path, delivered: bool) -> str:
    heads = ["#", "input", "clean", "adversarial", "fooled", "after encode"]
    heads += ["after delivery"] if delivered else []
    heads += ["budget", "Linf", "L2", "queries", "time (s)"]
    head = "".join(f'<th scope="col"><button type="button">{esc(h)}</button></th>' for h in heads)
    rows = [_row(i, e, delivered) for i, e in enumerate(entries)]
    controls = (
        '<div class="controls"><input id="filter" type="search" placeholder="filter by name or label" '
        'aria-label="filter"><select id="show" aria-label="show"><option value="all">all videos</option>'
        '<option value="fooled">fooled</option><option value="not-fooled">not fooled</option></select>'
        '<span id="shown" class="muted"></span></div>'
    )
    return (
        f'{controls}\n<table class="sortable" id="videos"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{''.join(rows)}</tbody></table>"
    )


def _flag_cell(value: object) -> str:
    v = "" if value is None else str(int(bool(value)))
    return f'<td data-v="{v}">{yes_no(value)}</td>'


def _row(i: int, e: Entry, delivered: bool) -> str:
    r = e.report
    clean, adv = r.get("clean") or {}, r.get("adversarial") or {}
    pert = r.get("perturbation") or {}
    outcome = "fooled" if e.final_success else "not-fooled"
    cells = [
        f'<td class="num" data-v="{i}">{i + 1}</td>',
        f'<td><a href="#v{i}">{esc(e.input_name)}</a></td>',
        f'<td>{esc(clean.get("label"))} <span class="muted">{number(clean.get("confidence"), 2)}</span></td>',
        f'<td>{esc(adv.get("label"))} <span class="muted">{number(adv.get("confidence"), 2)}</span></td>',
        _flag_cell(r.get("success")),
        _flag_cell(r.get("success_after_encode")),
    ]
    if delivered:
        cells.append(_flag_cell(None if e.delivery is None else e.delivery.get("success_after_delivery")))
    eps = (r.get("attack") or {}).get("params", {}).get("eps")
    linf = pert.get("linf")
    total = (r.get("timing") or {}).get("total")
    cells += [
        f'<td class="num" data-v="{_v(eps)}">{levels(eps)}</td>',
        f'<td class="num" data-v="{_v(linf)}">{levels(linf)}</td>',
        f'<td class="num" data-v="{_v(pert.get("l2"))}">{number(pert.get("l2"))}</td>',
        f'<td class="num">{number(r.get("queries"))}</td>',
        f'<td class="num" data-v="{_v(total)}">{number(total, 2)}</td>',
    ]
    return f'<tr data-outcome="{outcome}">{"".join(cells)}</tr>\n'


def _v(value: object) -> str:
    return esc(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _section(i: int, e: Entry, page: Path) -> str:
    r = e.report
    clean, adv = r.get("clean") or {}, r.get("adversarial") or {}
    verdict = {True: "fooled", False: "not fooled", None: ""}[e.final_success]
    summary = f"{esc(e.input_name)}: {esc(clean.get('label'))} → {esc(adv.get('label'))} ({verdict})"
    # The section's body is an inert <template>, put into the <details> when it is first opened
    # (page.js): a thousand bodies parsed as live elements made a 1,000-video page load 4x slower.
    parts = [f'<details class="video" id="v{i}"><summary>{summary}</summary></details><template id="t-v{i}">']
    parts.append(_players(e, page))
    parts.append("<h3>Predictions</h3>" + _predictions(e))
    parts.append("<h3>Budget and perturbation</h3>" + _facts(e))
    parts.append("<h3>Pictures</h3>" + _pictures(e, page))
    warnings = [*(r.get("warnings") or []), *((r.get("video") or {}).get("notes") or [])]
    if warnings:
        parts.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>")
    parts.append(_links(e, page))
    parts.append("</template>")
    return "\n".join(parts)


def _players(e: Entry, page: Path) -> str:
    clean_p, adv_p = preview_paths(e.folder, e.name)
    lossless = e.file(".adv.mp4")
    result = (
        f'the result is <a href="{href(lossless, page)}">{esc(lossless.name)}</a> (lossless; most browsers '
        "cannot play it)"
        if lossless is not None
        else "the lossless result was not kept (--outputs without adv)"
    )
    if not (clean_p.is_file() and adv_p.is_file()):
        return f'<p class="note">No previews for this video (--outputs without preview); {result}.</p>'

    def figure(path: Path, caption: str) -> str:
        return (
            f'<figure><video src="{href(path, page)}" muted loop playsinline preload="none" controls>'
            f"</video><figcaption>{caption}</figcaption></figure>"
        )

    return (
        '<div class="player"><button class="play" type="button">Play / pause both</button>'
        f'<span class="note">Previews (H.264 yuv420p, lossy: they blur the perturbation); {result}.</span></div>'
        f'<div class="pair">{figure(clean_p, "clean (preview)")}{figure(adv_p, "adversarial (preview)")}</div>'
    )


def _prediction_row(when: str, p: object) -> str:
    if not isinstance(p, dict):
        return f"<tr><td>{esc(when)}</td><td colspan=3 class=muted>-</td></tr>"
    top = ", ".join(
        f"{esc(t.get('label'))} {number(t.get('confidence'), 2)}"
        for t in (p.get("top") or [])[:3]
        if isinstance(t, dict)
    )
    return (
        f"<tr><td>{esc(when)}</td><td>{esc(p.get('label'))}</td>"
        f'<td class="num">{number(p.get("confidence"), 3)}</td><td class="muted">{top}</td></tr>'
    )


def _predictions(e: Entry) -> str:
    r = e.report
    rows = [
        _prediction_row("clean", r.get("clean")),
        _prediction_row("adversarial (in memory)", r.get("adversarial")),
        _prediction_row("after encode (the written file, decoded)", r.get("reencoded")),
    ]
    if e.delivery is not None:
        rows.append(_prediction_row("after delivery", e.delivery.get("prediction")))
    target = r.get("target")
    aim = f'<p class="muted">target: {esc(target.get("label"))}</p>' if isinstance(target, dict) else ""
    return (
        '<table class="small"><thead><tr><th>when</th><th>label</th><th>confidence</th><th>top 3</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{aim}"
    )


def _facts(e: Entry) -> str:
    r = e.report
    attack, pert = r.get("attack") or {}, r.get("perturbation") or {}
    facts: list[tuple[str, str]] = [("attack", esc(attack.get("name"))), ("paper", esc(attack.get("paper")))]
    for key, value in (attack.get("params") or {}).items():
        shown = levels(value) if key in _LEVEL_PARAMS else esc(value)
        facts.append((key, shown))
    threat = attack.get("threat") or {}
    facts.append(("threat model", f"{esc(threat.get('name'))}, bound {levels(threat.get('bound'))}"))
    if attack.get("robust_to"):
        facts.append(("made robust to", esc(json.dumps(attack["robust_to"], sort_keys=True))))
    facts += [
        ("Linf (largest change)", levels(pert.get("linf"))),
        ("mean absolute change", levels(pert.get("map"))),
        ("L2", number(pert.get("l2"))),
        (
            "frames changed",
            f"{number(pert.get('frames_perturbed'))} of {number((r.get('video') or {}).get('frames'))}",
        ),
        ("queries", number(r.get("queries"))),
        ("model", esc((r.get("model") or {}).get("name"))),
    ]
    d = e.delivery
    if d is not None:
        facts.append(
            (
                "delivery",
                esc(", ".join(f"{k} {v}" for k, v in d.items() if k in ("codec", "crf", "scale", "fps"))),
            )
        )
        for key, value in (d.get("perturbation") or {}).items():
            facts.append((f"delivery: {key}", esc(value)))
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _pictures(e: Entry, page: Path) -> str:
    figures = []
    captions = [
        (".heatmap.png", "contact sheet: clean, adversarial, change", True),
        (".heatmap.mp4", "heatmap video: the change per pixel", False),
        (".frames.png", "mean change per frame", False),
        (".curve.png", "the attack's objective per step or query", False),
    ]
    for suffix, caption, wide in captions:
        p = e.file(suffix)
        if p is None:
            continue
        url, cls = href(p, page), ' class="wide"' if wide else ""
        shown = (
            f'<video src="{url}" muted loop playsinline preload="none" controls></video>'
            if suffix.endswith(".mp4")
            else f'<a href="{url}"><img src="{url}" loading="lazy" alt="{esc(caption)}"></a>'
        )
        figures.append(f"<figure{cls}>{shown}<figcaption>{esc(caption)}</figcaption></figure>")
    if not figures:
        return '<p class="note">No pictures (--outputs without heatmaps and plots).</p>'
    return f'<div class="pics">{"".join(figures)}</div>'


def _links(e: Entry, page: Path) -> str:
    links = [f'<a href="{href(e.report_path, page)}">report (JSON)</a>']
    lossless = e.file(".adv.mp4")
    if lossless is not None:
        links.append(f'<a href="{href(lossless, page)}">adversarial video (lossless result)</a>')
    kept = (e.delivery or {}).get("path")
    if kept:
        p = e.folder / Path(str(kept)).name
        if p.is_file():
            links.append(f'<a href="{href(p, page)}">delivery copy</a>')
    return f'<p class="links">{"".join(links)}</p>'
