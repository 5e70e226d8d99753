"""The per-frame chart (`S.frames.png`) and the attack's curve (`S.curve.png`), drawn with PIL.

Two simple charts do not need a plotting library's layout engine: drawn directly they cost a few
milliseconds each (matplotlib spent 150-200 ms per figure, most of it laying out tick labels),
and they use the same font and colours as the contact sheet.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidattack.files import write_atomic
from vidattack.pipeline.render.text import font_safe, pil_font

#: What a curve needs said beside it, per attack: without a word, these shapes look like a fault.
CURVE_NOTES = {
    "flicker": (
        "The loss oscillates by design: sign descent with a fixed step. Once the video fools the model "
        "the hinge term is 0 and the regularization pulls the flicker back toward 0 until it no longer "
        "fools; then the hinge pushes again. The file holds the least regularized adversarial iterate "
        "(keep_best), not the last one."
    ),
}

_WHITE, _INK, _GRID, _MUTED = (255, 255, 255), (30, 30, 30), (228, 228, 228), (110, 110, 110)
_TEAL, _RED, _SHADE = (0, 121, 140), (209, 73, 91), (225, 225, 225)
#: The wide line under a shared panel's other series (the top-1 probability under p(label)).
_PALE = (150, 200, 210)
#: The per-frame bars: a neutral slate, no class colour of the strip below them.
_BAR = (92, 110, 132)
#: Class colours of the per-frame strip (matplotlib's tab10).
_CLASSES = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """About `count` round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.6g}" if abs(v) >= 1 else f"{v:.3g}"


@dataclass
class _Panel:
    """A plotting area: pixel box `(x0, y0, x1, y1)` and the data ranges it shows."""

    box: tuple[int, int, int, int]
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def px(self, x: float) -> float:
        x0, _, x1, _ = self.box
        lo, hi = self.xlim
        return x0 + (x - lo) / ((hi - lo) or 1.0) * (x1 - x0)

    def py(self, y: float) -> float:
        _, y0, _, y1 = self.box
        lo, hi = self.ylim
        return y1 - (y - lo) / ((hi - lo) or 1.0) * (y1 - y0)

    def axes(
        self, img: Any, draw: Any, *, xticks: bool, ylabel: str, xlabel: str = "", integer_x: bool = True
    ) -> None:
        """Grid, frame, tick labels and axis labels."""
        x0, y0, x1, y1 = self.box
        small, body = pil_font(11), pil_font(12)
        for v in nice_ticks(*self.ylim, 5):
            if self.ylim[0] - 1e-12 <= v <= self.ylim[1] + 1e-12:
                y = self.py(v)
                draw.line([(x0, y), (x1, y)], fill=_GRID)
                text = _label(v)
                draw.text((x0 - 6 - small.getlength(text), y - 7), text, font=small, fill=_MUTED)
        draw.rectangle([(x0, y0), (x1, y1)], outline=(150, 150, 150))
        if xticks:
            for v in nice_ticks(*self.xlim, 7, integer=integer_x):
                if self.xlim[0] - 1e-9 <= v <= self.xlim[1] + 1e-9:
                    x = self.px(v)
                    draw.line([(x, y1), (x, y1 + 4)], fill=_MUTED)
                    text = _label(v)
                    draw.text((x - small.getlength(text) / 2, y1 + 6), text, font=small, fill=_MUTED)
            if xlabel:
                draw.text(((x0 + x1 - body.getlength(xlabel)) / 2, y1 + 22), xlabel, font=body, fill=_INK)
        # the y label, rotated, left of the tick labels
        from PIL import Image, ImageDraw

        w = int(body.getlength(ylabel)) + 2
        tag = Image.new("RGBA", (w, 16), (0, 0, 0, 0))
        ImageDraw.Draw(tag).text((0, 0), ylabel, font=body, fill=_INK)
        tag = tag.rotate(90, expand=True)
        img.paste(tag, (6, int((y0 + y1 - tag.height) / 2)), tag)


def _canvas(width: int, height: int) -> tuple[Any, Any]:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), _WHITE)
    return img, ImageDraw.Draw(img)


def _title(draw: Any, text: str, x: int, width: int) -> None:
    font = pil_font(13, bold=True)
    text = font_safe(text)
    if font.getlength(text) > width:
        while font.getlength(text + "...") > width and len(text) > 1:
            text = text[:-1]
        text += "..."
    draw.text((x, 10), text, font=font, fill=_INK)


def _save(img: Any, path: Path) -> None:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    write_atomic(path, buf.getvalue())


def per_frame_chart(
    path: Path,
    per_frame_map: Sequence[float],
    *,
    frame_predictions: dict[str, Any] | None = None,
    sampled: Collection[int] | None = None,
    title: str = "",
    linf: float | None = None,
) -> None:
    """Mean absolute perturbation per frame, in 8-bit levels; frames the model never sampled shaded;
    with `linf` (the largest change of any pixel, in [0, 1]: an Linf attack's budget when it used it
    all), a dashed line at it, so each bar reads against the bound.

    With frame-level predictions (CNN+RNN models), a strip under the bars shows each sampled frame's
    clean and adversarial class, the sparse-attack paper's way of showing that clean frames after the
    perturbed ones flip too.
    """
    t = len(per_frame_map)
    values = [m * 255 for m in per_frame_map]
    width, left, right = 820, 78, 20
    top = 38
    plot_bottom = top + 200
    img, draw = _canvas(width, plot_bottom + (104 if frame_predictions else 50))
    _title(draw, title or "perturbation per frame", left, width - left - right)
    cap = None if linf is None else linf * 255
    panel = _Panel(
        (left, top, width - right, plot_bottom),
        (-0.5, t - 0.5),
        (0.0, max(max([*values, cap or 0.0], default=0) * 1.15, 0.05)),
    )
    unsampled = [] if sampled is None else [f for f in range(t) if f not in set(sampled)]
    for f in unsampled:
        draw.rectangle([(panel.px(f - 0.5), top), (panel.px(f + 0.5), plot_bottom)], fill=_SHADE)
    panel.axes(img, draw, xticks=not frame_predictions, ylabel="mean |change| (/255)", xlabel="frame")
    gap = 0.1 if t <= 80 else 0.0
    for f, v in enumerate(values):
        if v > 0:
            draw.rectangle(
                [(panel.px(f - 0.5 + gap), panel.py(v)), (panel.px(f + 0.5 - gap), plot_bottom)], fill=_BAR
            )
    small = pil_font(11)
    if cap is not None and cap > 0:
        y, x0, x1 = panel.py(cap), panel.box[0], panel.box[2]
        for x in range(int(x0), int(x1), 10):  # dashed
            draw.line([(x, y), (min(x + 5, x1), y)], fill=_INK, width=1)
        key = f"largest change of any pixel (Linf): {cap:.3g}/255"
        draw.text((x0 + 6, y - 15), key, font=small, fill=_INK)
    if unsampled:
        key = "shaded: not sampled by the model"
        x = width - right - 16 - small.getlength(key)
        draw.rectangle([(x - 16, top + 8), (x - 4, top + 20)], fill=_SHADE, outline=_MUTED)
        draw.text((x, top + 7), key, font=small, fill=_INK)
    if frame_predictions:
        _prediction_strip(draw, panel, frame_predictions, plot_bottom)
    _save(img, path)


def _prediction_strip(draw: Any, panel: _Panel, preds: dict[str, Any], plot_bottom: int) -> None:
    """Two rows of coloured squares (clean, adversarial class per sampled frame) and their legend."""
    small = pil_font(11)
    frames, clean, adv = preds["frames"], preds["clean"], preds["adversarial"]
    classes = sorted(set(clean) | set(adv))
    colours = {c: _CLASSES[i % len(_CLASSES)] for i, c in enumerate(classes)}
    x0, _, x1, _ = panel.box
    rows = {"clean": plot_bottom + 14, "adversarial": plot_bottom + 32}
    size = max(3.0, min(7.0, (x1 - x0) / max(len(panel_range(panel)), 1) / 2.5))
    for name, labels in (("clean", clean), ("adversarial", adv)):
        y = rows[name]
        draw.text((x0 - 8 - small.getlength(name), y - 7), name, font=small, fill=_INK)
        for f, c in zip(frames, labels, strict=True):
            x = panel.px(f)
            draw.rectangle([(x - size, y - size), (x + size, y + size)], fill=colours[c])
    for v in nice_ticks(*panel.xlim, 7, integer=True):
        if panel.xlim[0] <= v <= panel.xlim[1]:
            text = _label(v)
            draw.text(
                (panel.px(v) - small.getlength(text) / 2, plot_bottom + 44), text, font=small, fill=_MUTED
            )
    body = pil_font(12)
    label = "frame (class predicted per sampled frame)"
    draw.text(((x0 + x1 - body.getlength(label)) / 2, plot_bottom + 58), label, font=body, fill=_INK)
    x, y = x0, plot_bottom + 78
    for c in classes:
        name = font_safe(str(c))
        draw.rectangle([(x, y + 2), (x + 10, y + 12)], fill=colours[c])
        draw.text((x + 14, y), name, font=small, fill=_INK)
        x += int(small.getlength(name)) + 30


def panel_range(panel: _Panel) -> range:
    return range(math.ceil(panel.xlim[0]), math.floor(panel.xlim[1]) + 1)


#: Series drawn in another's panel, under it: V-BAD's probability of the label and the top-1
#: probability are one number while the label is the top-1 class, so in panels of their own they
#: look like one panel drawn twice, and drawn in one panel the upper line hides the lower.
_SHARED_PANEL = {"label_prob": "top1_prob"}
#: History keys that are not curves: the x axes, the video index and the per-record verdict.
_NOT_CURVES = ("queries", "step", "video", "fooled")
#: The attacks whose `loss` is V-BAD's: log p(clean label) untargeted, -log p(target) targeted.
_VBAD_LOSS = frozenset({"vbad", "p-bad", "sr-bad"})


def curve_names(attack: str, clean: str, target: str | None = None) -> dict[str, str]:
    """Axis labels of an attack's history keys that name the objective and the class it is about:
    the shared gradient loop's `objective` is -log p(clean label) untargeted, log p(target) targeted
    (both ascended); V-BAD's `loss` is the opposite sign (descended) and `label_prob` is p(that
    class). Keys not named here keep their own name."""
    cls = font_safe(clean if target is None else target)
    names = {
        "objective": f"log p({cls})" if target is not None else f"-log p({cls})",
        "label_prob": f"p({cls})",
        "top1_prob": "top-1 prob",
    }
    if attack in _VBAD_LOSS:
        names["loss"] = f"-log p({cls})" if target is not None else f"log p({cls})"
    return names


def flip_point(history: Sequence[dict[str, float]], x: str = "step") -> float | None:
    """The `x` (step or queries) of the first record whose iterate fools the model after records that
    did not: where the label flipped. None when the history records no verdict (`fooled`), never
    fools, or fools from its first record (a targeted start from a video of the target class)."""
    rows = [r for r in history if x in r] or list(history)
    flags = [r.get("fooled") for r in rows]
    if not flags or any(f is None for f in flags):
        return None
    first = next((i for i, f in enumerate(flags) if f), None)
    if not first:  # never fooled (None), or fooled from the start (0)
        return None
    return float(rows[first][x]) if x in rows[first] else float(first)


def history_chart(
    path: Path,
    history: Sequence[dict[str, float]],
    *,
    x: str = "step",
    title: str = "",
    note: str | None = None,
    names: Mapping[str, str] | None = None,
    fooled: bool | None = None,
) -> bool:
    """Plot an attack's history against `x` ("step" for white-box iterations, "queries" for black-box
    attacks): one panel per recorded series that changes (a constant one, like V-BAD's eps when it
    never shrinks, is named in the caption instead), a marker per record, and a dashed line where the
    label flipped (`flip_point`). `names` label the y axes (`curve_names`); `fooled` (does the
    written video fool the model) lets the caption say when the flip came after the last record.
    False if there is nothing to plot."""
    rows = [r for r in history if x in r] or list(history)
    if len(rows) < 2:
        return False
    keys = [k for k in rows[0] if k not in _NOT_CURVES and all(k in r for r in rows)]
    moving = [k for k in keys if len({r[k] for r in rows}) > 1]
    constant = [k for k in keys if k not in moving]
    finite = [k for k in moving if all(math.isfinite(r[k]) for r in rows)]
    if not finite:
        return False
    names = dict(names or {})
    # a shared series goes under its partner's panel, or keeps its own when the partner is not drawn
    under = {k: p for k, p in _SHARED_PANEL.items() if k in finite and p in finite}
    panels = [k for k in finite if k not in under]
    has_x = x in rows[0]
    xs = [float(r[x]) for r in rows] if has_x else [float(i) for i in range(len(rows))]
    x_label = {"step": "step", "queries": "queries to the model"}.get(x, x) if has_x else "record"
    flip = flip_point(rows, x) if has_x else None
    captions = []
    if flip is not None:
        where = f"step {flip:g}" if x == "step" else f"{flip:g} {x_label}"
        captions.append(f"red dashed line: the label flipped (first record that fools the model, {where})")
    elif fooled and rows and not any(r.get("fooled", 1) for r in rows):
        # a record is the iterate a step starts from: the last step's result is judged only in the report
        captions.append("the label flipped after the last record (the written video fools the model)")
    for k, p in under.items():
        captions.append(
            f"{names.get(p, p)} and {names.get(k, k)} are the same number while that class is the "
            "top-1 class, so their lines coincide there: the wide pale line is the top-1 one"
        )
    if constant:
        captions.append("constant: " + ", ".join(f"{k} = {rows[0][k]:.4g}" for k in constant))
    if note:
        captions.append(note)
    lines = [line for c in captions for line in textwrap.wrap(c, 120)]
    width, left, right, panel_h, gap = 820, 78, 20, 118, 14
    top = 38
    height = top + len(panels) * (panel_h + gap) + 34 + 15 * len(lines) + (8 if lines else 0)
    img, draw = _canvas(width, height)
    _title(draw, title or "attack progress", left, width - left - right)
    for i, key in enumerate(panels):
        shared = [k for k, p in under.items() if p == key]
        series = [[float(r[k]) for r in rows] for k in [key, *shared]]
        lo, hi = min(min(s) for s in series), max(max(s) for s in series)
        pad = (hi - lo) * 0.08
        y0 = top + i * (panel_h + gap)
        panel = _Panel((left, y0, width - right, y0 + panel_h), (min(xs), max(xs)), (lo - pad, hi + pad))
        last = i == len(panels) - 1
        ylabel = "probability" if shared else names.get(key, key.replace("_", " "))
        panel.axes(img, draw, xticks=last, ylabel=ylabel, xlabel=x_label if last else "")
        if shared:
            _curve(draw, panel, xs, series[0], _PALE, 6)
            for ys in series[1:]:
                _curve(draw, panel, xs, ys, _TEAL, 2)
            _legend(draw, panel, [(names.get(k, k), c) for k, c in ((key, _PALE), (shared[0], _TEAL))])
        else:
            _curve(draw, panel, xs, series[0], _TEAL, 2)
        if flip is not None:  # over the curves, so its words are never hidden by them
            _dashed_vertical(draw, panel, flip, label="label flipped" if i == 0 else "")
    small = pil_font(11)
    y = top + len(panels) * (panel_h + gap) + 28
    for line in lines:
        draw.text((left, y), line, font=small, fill=_MUTED)
        y += 15
    _save(img, path)
    return True


def _curve(
    draw: Any, panel: _Panel, xs: Sequence[float], ys: Sequence[float], colour: Any, width: int
) -> None:
    """A line through the points, with a marker per record while they stay apart."""
    points = [(panel.px(a), panel.py(b)) for a, b in zip(xs, ys, strict=True)]
    draw.line(points, fill=colour, width=width)
    if len(points) <= 60:
        r = 3 if width <= 2 else 5
        for px, py in points:
            draw.ellipse([(px - r, py - r), (px + r, py + r)], fill=colour)


def _dashed_vertical(draw: Any, panel: _Panel, x: float, *, label: str = "") -> None:
    px, (_, y0, x1, y1) = panel.px(x), panel.box
    for y in range(int(y0), int(y1), 8):
        draw.line([(px, y), (px, min(y + 4, y1))], fill=_RED, width=2)
    if label:
        small = pil_font(11)
        # right of the line, or left of it when the line is near the right edge
        w = small.getlength(label)
        tx = px + 5 if px + 5 + w < x1 - 4 else px - 5 - w
        # on white: the words stay readable where the curve passes under them
        draw.rectangle([(tx - 2, y0 + 3), (tx + w + 2, y0 + 17)], fill=_WHITE)
        draw.text((tx, y0 + 4), label, font=small, fill=_RED)


def _legend(draw: Any, panel: _Panel, entries: Sequence[tuple[str, Any]]) -> None:
    small = pil_font(11)
    x, y = panel.box[2] - 8, panel.box[1] + 6
    for name, colour in reversed(entries):
        x -= int(small.getlength(name))
        draw.text((x, y), name, font=small, fill=_INK)
        x -= 18
        draw.rectangle([(x, y + 4), (x + 12, y + 9)], fill=colour)
        x -= 14
