"""Heatmaps of |adversarial - clean|: the colour scale, the annotated heatmap video's frames, the contact sheet.

One fixed colour scale for every video and attack, so pictures compare: per pixel the largest change
over R, G and B, in 8-bit levels, through matplotlib's inferno map on a log2 axis. Black means
unchanged; 1/255 is already a visible dark purple; 4/255 (a usual Linf budget) is magenta; 255/255 is
pale yellow. The colour mapping is one table look-up per pixel (`heatmap_rgb`), with no figure
objects, so it costs about as much as a copy of the frames.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidattack.files import write_atomic
from vidattack.pipeline.render.text import font_safe, pil_font

#: Where 1/255 sits on the colour map (0..255): far enough from black to be told apart from an
#: unchanged pixel at a glance (at 64, a dark purple, it was not).
FLOOR = 96
#: Levels labelled on every colour bar.
TICKS = (1, 2, 4, 8, 16, 32, 64, 128, 255)
#: Contact sheets scale small clips up to at least this height (nearest neighbour)...
MIN_HEIGHT = 256
#: ... and heatmap videos to at least this one (every pixel more costs encoding time).
MIN_VIDEO_HEIGHT = 200
#: ... and scale wide videos down to at most this tile width on the contact sheet.
MAX_TILE_WIDTH = 640

_BG = (24, 24, 24)
_FG = (235, 235, 235)
_DIM = (160, 160, 160)
_MARK = (80, 200, 255)


def level_position(level: float) -> float:
    """Where a change of `level` (8-bit levels, 0..255) sits on the colour map, in [0, 1]."""
    if level <= 0:
        return 0.0
    return (FLOOR + (255 - FLOOR) * math.log2(max(level, 1.0)) / math.log2(255)) / 255


@cache
def level_colours() -> Tensor:
    """`(256, 3)` uint8: the colour of each change 0..255 (row 0, unchanged, is black)."""
    from matplotlib import colormaps

    positions = torch.tensor([level_position(d) for d in range(256)], dtype=torch.float64)
    rgb = colormaps["inferno"](positions.numpy())[:, :3]
    lut = (torch.from_numpy(rgb) * 255).round().to(torch.uint8)
    lut[0] = 0
    return lut


def change_levels(clean: Tensor, adv: Tensor) -> Tensor:
    """Per pixel the largest change over the channels: `(t, H, W, 3)` uint8 pair -> `(t, H, W)` int16."""
    return (adv.short() - clean.short()).abs_().amax(dim=-1)


def heatmap_rgb(clean: Tensor, adv: Tensor) -> Tensor:
    """The heatmap of `(t, H, W, 3)` uint8 frames: `(t, H, W, 3)` uint8 RGB, one look-up per pixel.

    A pure function of the two chunks, so a streaming writer can call it a few frames at a time.
    """
    d = change_levels(clean, adv)
    return level_colours().index_select(0, d.flatten().int()).view(*d.shape, 3)


def greyed(frames: Tensor) -> Tensor:
    """`(t, H, W, 3)` uint8 as dim grey: how frames the model never sampled (never changed) are shown."""
    luma = frames.float() @ torch.tensor([0.299, 0.587, 0.114])  # (t, H, W)
    return (luma * 0.35).round().to(torch.uint8).unsqueeze(-1).expand(*luma.shape, 3)


def zoom_for(height: int, minimum: int = MIN_HEIGHT) -> int:
    """Integer up-scaling that brings a clip to at least `minimum` pixels (at most 8x)."""
    return max(1, min(8, math.ceil(minimum / max(height, 1))))


def upscale(frames: Tensor, zoom: int) -> Tensor:
    """Nearest-neighbour up-scaling of `(t, H, W, C)`: every pixel becomes a `zoom x zoom` block."""
    if zoom == 1:
        return frames
    t, h, w, c = frames.shape
    blocks = frames[:, :, None, :, None, :].expand(t, h, zoom, w, zoom, c)  # one copy, no temporaries
    return blocks.reshape(t, h * zoom, w * zoom, c)


# -- the colour bar -----------------------------------------------------------------------------------


def colour_bar(width: int, *, max_level: int | None, note: str | None = None, scale: float = 1.0) -> Any:
    """A PIL image `width` wide: the colour scale with its ticks in /255 levels and this video's largest
    change marked, under a caption (or `note` instead of the bar, for frames the model never sampled).

    A black box stands for 0 (unchanged); the bar runs from 1/255 to 255/255 on a log axis.
    """
    import numpy as np
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    small = pil_font(max(9, round(11 * scale)))
    pad = round(6 * scale)
    bar_h = max(6, round(10 * scale))
    line = small.getbbox("0/255g")[3] + round(3 * scale)
    mark = max(3, round(4 * scale))  # the largest-change marker, between the caption and the bar
    height = pad + line + mark + 2 + bar_h + round(3 * scale) + 2 * line + pad // 2
    img = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(img)
    if note is not None:
        draw.text((pad, pad), note, font=small, fill=_FG)
        draw.text((pad, pad + line + bar_h // 2), "(shown in dim grey)", font=small, fill=_DIM)
        return img
    captions = (
        "change per pixel |adv - clean| in /255 levels (largest of R, G, B; log scale)",
        "change per pixel |adv - clean| in /255 levels",
        "change per pixel, /255 levels",
        "change, /255",
    )  # the longest that fits: narrow frames get the short forms
    caption = next((c for c in captions if small.getlength(c) <= width - 2 * pad), captions[-1])
    draw.text((pad, pad), caption, font=small, fill=_FG)
    top = pad + line + mark + 2
    zero_w = bar_h + round(2 * scale)
    draw.rectangle([(pad, top), (pad + bar_h, top + bar_h)], fill=(0, 0, 0), outline=_DIM)
    x0, x1 = pad + zero_w + round(4 * scale), width - pad
    lo = FLOOR / 255
    ramp = colormaps["inferno"](np.linspace(lo, 1.0, max(x1 - x0, 1)))[:, :3]
    strip = (np.broadcast_to(ramp, (bar_h + 1, *ramp.shape)) * 255).round().astype(np.uint8)
    img.paste(Image.fromarray(np.ascontiguousarray(strip)), (x0, top))

    def x_of(level: float) -> float:
        return x0 + (level_position(level) - lo) / (1 - lo) * (x1 - x0 - 1)

    ticks = TICKS if x1 - x0 >= 260 else (1, 4, 16, 64, 255)
    y_label = top + bar_h + round(3 * scale)
    draw.text((pad + (bar_h - small.getlength("0")) / 2, y_label), "0", font=small, fill=_FG)
    for level in ticks:
        x = x_of(level)
        draw.line([(x, top + bar_h - round(3 * scale)), (x, top + bar_h + 1)], fill=_FG)
        text = str(level)
        w = small.getlength(text)
        draw.text((min(max(x - w / 2, x0), x1 - w), y_label), text, font=small, fill=_FG)
    # the key: what black and the marker mean (black holes in the change column are pixels the
    # attack left exactly as they were, not missing data)
    y_key = y_label + line
    draw.rectangle([(pad, y_key + 2), (pad + bar_h, y_key + 2 + bar_h)], fill=(0, 0, 0), outline=_DIM)
    key = "black: unchanged (0)" if width >= 300 else "black: 0"
    draw.text((pad + zero_w + round(4 * scale), y_key), key, font=small, fill=_FG)
    if max_level:
        x = x_of(max_level)
        draw.polygon([(x - mark, top - mark - 2), (x + mark, top - mark - 2), (x, top - 2)], fill=_MARK)
        kx = pad + zero_w + round(4 * scale) + small.getlength(key) + round(16 * scale)
        draw.polygon([(kx, y_key + 3), (kx + 2 * mark, y_key + 3), (kx + mark, y_key + 3 + mark)], fill=_MARK)
        tx = kx + 2 * mark + round(5 * scale)
        texts = (f"this video's largest change ({max_level}/255)", f"largest ({max_level}/255)", "largest")
        text = next((t for t in texts if tx + small.getlength(t) <= width - pad), texts[-1])
        draw.text((tx, y_key), text, font=small, fill=_FG)
    return img


def _pil_array(img: Any) -> Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())


# -- the heatmap video ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeatmapPainter:
    """The heatmap video's frames: `painter(clean, adv, frame_ids)` -> `(t, H', W', 3)` uint8.

    Small clips are scaled up (nearest neighbour, `zoom`) and get a legend strip below; frames of
    `MIN_HEIGHT` and more keep their size and get the strip over their bottom rows, so the output has
    the input's shape and can be written into the adversarial buffer in place. Frames the model never
    sampled (never changed) are shown as the clean frame in dim grey with a strip that says so, not as
    black. Pure apart from its settings, so a streaming writer can call it chunk by chunk.
    """

    height: int
    width: int
    zoom: int
    sampled: frozenset[int] | None
    strip: Tensor  # (S, W', 3) uint8: the colour bar
    strip_unsampled: Tensor  # (S, W', 3) uint8: "not sampled by the model"
    title: str = ""  # when given, stamped with the frame number at the top left of each frame

    @classmethod
    def for_video(
        cls,
        height: int,
        width: int,
        *,
        max_level: int,
        sampled: Collection[int] | None = None,
        title: str = "",
    ) -> HeatmapPainter:
        zoom = zoom_for(height, MIN_VIDEO_HEIGHT)
        w = width * zoom
        scale = max(1.0, w / 480)
        bar = colour_bar(w, max_level=max_level, scale=scale)
        note = colour_bar(w, max_level=None, note="frame not sampled by the model: unchanged", scale=scale)
        strip, unsampled = _pil_array(bar), _pil_array(note)
        rows = max(strip.shape[0], unsampled.shape[0])
        if zoom > 1 and (height * zoom + rows) % 2:
            rows += 1  # players want even sizes: pad the strip, not the picture
        return cls(
            height,
            width,
            zoom,
            None if sampled is None else frozenset(sampled),
            _pad_rows(strip, rows),
            _pad_rows(unsampled, rows),
            font_safe(title),
        )

    @property
    def overlay(self) -> bool:
        """True when the strip is drawn over the frame's bottom rows (large frames, no up-scaling)."""
        return self.zoom == 1 and self.height >= MIN_VIDEO_HEIGHT

    @property
    def out_size(self) -> tuple[int, int]:
        """`(H', W')` of the painted frames."""
        if self.overlay:
            return self.height, self.width
        return self.height * self.zoom + self.strip.shape[0], self.width * self.zoom

    def __call__(self, clean: Tensor, adv: Tensor, frame_ids: Sequence[int]) -> Tensor:
        heat = heatmap_rgb(clean, adv)  # (t, H, W, 3)
        unsampled = [i for i, f in enumerate(frame_ids) if self.sampled is not None and f not in self.sampled]
        if unsampled:
            heat[unsampled] = greyed(clean[unsampled])
        s = self.strip.shape[0]
        if self.overlay:
            out = heat
            s = min(s, self.height)
            out[:, -s:] = self.strip[-s:]
        else:
            h = self.height * self.zoom
            out = torch.empty((heat.shape[0], *self.out_size, 3), dtype=torch.uint8)
            out[:, :h] = upscale(heat, self.zoom)
            out[:, h:] = self.strip
        if unsampled:
            out[unsampled, -s:] = self.strip_unsampled[-s:]
        if self.title:  # which video and which frame: a paused player says so
            for i, f in enumerate(frame_ids):
                out[i] = self._stamp(out[i], f)
        return out

    def _stamp(self, frame: Tensor, index: int) -> Tensor:
        """`frame` with the title and `frame N` in a dark box at its top left."""
        from PIL import Image, ImageDraw

        w = frame.shape[1]
        small = pil_font(max(9, round(11 * max(1.0, w / 480))))
        text = f"{self.title}   frame {index}"
        while small.getlength(text) > w - 8 and len(text) > 12:  # too long for a narrow frame: cut the title
            text = "…" + text[len(text) // 4 :]
        line = small.getbbox("Hg")[3] + 4
        band = frame[:line].numpy().copy()
        img = Image.fromarray(band)
        draw = ImageDraw.Draw(img)
        draw.rectangle([(0, 0), (min(w, small.getlength(text) + 8), line)], fill=_BG)
        draw.text((4, 1), text, font=small, fill=_FG)
        out = frame.clone()
        out[:line] = _pil_array(img)
        return out


def _pad_rows(strip: Tensor, rows: int) -> Tensor:
    if strip.shape[0] >= rows:
        return strip
    pad = torch.tensor(_BG, dtype=torch.uint8).expand(rows - strip.shape[0], strip.shape[1], 3)
    return torch.cat([strip, pad])


# -- key frames and the contact sheet ---------------------------------------------------------------


def key_frames(per_frame_map: Sequence[float], count: int = 4) -> list[int]:
    """Frames to show, spread over the video: the most perturbed frame of each of `count` equal spans
    of the perturbed frames' range (near ties go to the span's middle; all perturbed frames when
    there are no more than `count`), or evenly spaced frames when nothing changed."""
    t = len(per_frame_map)
    if t == 0:
        return []
    perturbed = [i for i, m in enumerate(per_frame_map) if m > 0]
    if not perturbed:
        return sorted({round(i * (t - 1) / max(count - 1, 1)) for i in range(min(count, t))})
    if len(perturbed) <= count:
        return perturbed
    first, last = perturbed[0], perturbed[-1]
    span = (last - first + 1) / count
    chosen: list[int] = []
    for k in range(count):
        lo, hi = first + k * span, first + (k + 1) * span
        group = [i for i in perturbed if lo <= i < hi]
        if group:
            # the most changed frame of the span; among near ties the one nearest its middle, so
            # that evenly perturbed videos (Linf) show frames spread evenly, not neighbours
            top = max(per_frame_map[i] for i in group)
            middle = (lo + hi - 1) / 2
            near = [i for i in group if per_frame_map[i] >= 0.9 * top]
            chosen.append(min(near, key=lambda i: abs(i - middle)))
    # a span with no perturbed frame: fill up with the most perturbed frames not yet shown
    rest = sorted((i for i in perturbed if i not in chosen), key=lambda i: -per_frame_map[i])
    return sorted(chosen + rest[: count - len(chosen)])


def _tile_size(h: int, w: int) -> tuple[int, int]:
    if h < MIN_HEIGHT:
        z = zoom_for(h)
        return h * z, w * z
    if w > MAX_TILE_WIDTH:
        return max(1, round(h * MAX_TILE_WIDTH / w)), MAX_TILE_WIDTH
    return h, w


def _tile(img: Tensor, size: tuple[int, int]) -> Any:
    """A PIL tile of `(H, W, 3)` uint8 at `size` `(h, w)`: nearest up, area average down."""
    from PIL import Image

    pic = Image.fromarray(img.numpy())
    if (pic.height, pic.width) == size:
        return pic
    up = size[0] >= img.shape[0]
    return pic.resize((size[1], size[0]), Image.Resampling.NEAREST if up else Image.Resampling.BOX)


def _heat_tile(clean: Tensor, adv: Tensor, size: tuple[int, int]) -> Any:
    """The heatmap tile; when shrinking, each tile pixel shows the largest change it covers, so a
    single changed pixel never averages away."""
    from PIL import Image

    d = change_levels(clean[None], adv[None])[0]  # (H, W)
    if size[0] < d.shape[0]:
        d = torch.nn.functional.adaptive_max_pool2d(d[None].float(), size)[0].short()
    rgb = level_colours().index_select(0, d.flatten().int()).view(*d.shape, 3)
    pic = Image.fromarray(rgb.numpy())
    if (pic.height, pic.width) != size:
        pic = pic.resize((size[1], size[0]), Image.Resampling.NEAREST)
    return pic


def contact_sheet(
    path: Path,
    clean: Tensor | Mapping[int, Tensor],
    adv: Tensor | Mapping[int, Tensor],
    frames: Sequence[int],
    *,
    title: str = "",
    sampled: Collection[int] | None = None,
    num_frames: int | None = None,
) -> tuple[int, int]:
    """Write a PNG with one row per key frame (clean | adversarial | heatmap, scaled so that small clips
    are at least `MIN_HEIGHT` tall), a labelled colour bar, and a title; return its `(width, height)`.

    `clean` and `adv` are whole videos `(T, H, W, 3)` uint8, or only the `frames` shown (`{id: (H, W,
    3)}`, from a streamed video: then `num_frames` is T)."""
    from PIL import Image, ImageDraw

    if not frames:
        raise ValueError("expected at least one frame to show")
    h, w = int(clean[frames[0]].shape[0]), int(clean[frames[0]].shape[1])
    th, tw = _tile_size(h, w)
    big, body, small = pil_font(16, bold=True), pil_font(13), pil_font(12)
    pad, gap = 14, 10
    width = 3 * tw + 2 * gap + 2 * pad
    title_lines = _wrap(font_safe(title), big, width - 2 * pad) if title else []
    levels = [int(change_levels(clean[f][None], adv[f][None]).max()) for f in frames]
    t = num_frames if num_frames is not None else len(clean)
    sub = (
        f"{len(frames)} of {t} frames, spread over the video (the most changed frame of each part); "
        f"largest change {max(levels, default=0)}/255"
    )
    sub_lines = _wrap(sub, small, width - 2 * pad)
    head_h = pad + 22 * len(title_lines) + 17 * len(sub_lines) + 8
    col_h = 20
    row_label_h = 19
    bar = colour_bar(min(width - 2 * pad, 900), max_level=max(levels, default=0), scale=1.2)
    height = head_h + col_h + len(frames) * (row_label_h + th + gap) + bar.height + pad
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    y = pad
    for line in title_lines:
        draw.text((pad, y), line, font=big, fill=_FG)
        y += 22
    for line in sub_lines:
        draw.text((pad, y), line, font=small, fill=_DIM)
        y += 17
    y = head_h
    for c, name in enumerate(("clean", "adversarial", "change |adv - clean|")):
        draw.text((pad + c * (tw + gap), y), name, font=body, fill=_FG)
    y += col_h
    for f, level in zip(frames, levels, strict=True):
        label = f"frame {f}   largest change {level}/255"
        if sampled is not None and f not in sampled:
            label += "   (not sampled by the model)"
        draw.text((pad, y), label, font=small, fill=_DIM)
        y += row_label_h
        sheet.paste(_tile(clean[f], (th, tw)), (pad, y))
        sheet.paste(_tile(adv[f], (th, tw)), (pad + tw + gap, y))
        sheet.paste(_heat_tile(clean[f], adv[f], (th, tw)), (pad + 2 * (tw + gap), y))
        y += th + gap
    sheet.paste(bar, (pad, y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", compress_level=1, compress_type=3)  # zlib RLE: fast, as small
    write_atomic(path, buf.getvalue())
    return width, height


def _wrap(text: str, font: Any, width: float) -> list[str]:
    """Greedy word wrap of `text` to `width` pixels in `font` (a word longer than a line is cut)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
        while font.getlength(current) > width and len(current) > 1:
            cut = len(current)
            while cut > 1 and font.getlength(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    return lines
