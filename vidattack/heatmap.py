"""Perturbation heatmaps: a colour video of |adversarial - clean| and a PNG contact sheet of key frames."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from vidattack.report import write_atomic


@cache
def _colormap_lut(name: str = "inferno") -> Tensor:
    # matplotlib's perceptually uniform maps; import lazily, it is slow to load
    from matplotlib import colormaps

    lut = colormaps[name](torch.linspace(0, 1, 256).numpy())[:, :3]
    return (torch.from_numpy(lut) * 255).round().to(torch.uint8)  # (256, 3)


def magnitude_scale(clean: Tensor, adv: Tensor) -> int:
    """The largest per-pixel change (in 8-bit levels): heatmaps map 0..scale to the full colour range."""
    top = 0
    for s in range(0, clean.shape[0], 4):
        d = (adv[s : s + 4].short() - clean[s : s + 4].short()).abs().amax()
        top = max(top, int(d))
    return max(top, 1)


def heatmap_frames_(clean: Tensor, adv: Tensor, scale: int) -> Tensor:
    """Overwrite `adv` `(T, H, W, 3)` uint8 in place with the heatmap of |adv - clean| and return it.

    Per pixel the largest change over the three channels, divided by `scale`, through the inferno
    colour map. In place because for a long 1080p video another full copy would not fit in memory.
    """
    lut = _colormap_lut()
    for s in range(0, adv.shape[0], 4):
        d = (adv[s : s + 4].short() - clean[s : s + 4].short()).abs().amax(dim=-1)  # (t, H, W)
        idx = (d.float() * (255.0 / scale)).round().clamp(0, 255).long()
        adv[s : s + 4] = lut[idx]
    return adv


def key_frames(per_frame_map: Sequence[float], count: int = 4) -> list[int]:
    """Frames to show: the most perturbed ones (in time order), or evenly spaced if none changed."""
    t = len(per_frame_map)
    if t == 0:
        return []
    perturbed = [i for i, m in enumerate(per_frame_map) if m > 0]
    if perturbed:
        best = sorted(perturbed, key=lambda i: -per_frame_map[i])[:count]
        return sorted(best)
    return sorted({round(i * (t - 1) / max(count - 1, 1)) for i in range(min(count, t))})


def contact_sheet(
    path: Path, clean: Tensor, adv: Tensor, frames: Sequence[int], scale: int, title: str = ""
) -> None:
    """PNG with one row per key frame: clean | adversarial | heatmap, each labelled."""
    from PIL import Image, ImageDraw

    lut = _colormap_lut()
    h, w = clean.shape[1], clean.shape[2]
    zoom = max(1, min(4, 160 // max(min(h, w), 1)))
    cell_w, cell_h, pad, head = w * zoom, h * zoom, 6, 18
    rows = len(frames)
    sheet = Image.new("RGB", (3 * cell_w + 4 * pad, head + rows * (cell_h + head) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 3), title[:120], fill=(230, 230, 230))
    for r, f in enumerate(frames):
        d = (adv[f].short() - clean[f].short()).abs().amax(dim=-1)
        heat = lut[(d.float() * (255.0 / scale)).round().clamp(0, 255).long()]
        y = head + r * (cell_h + head)
        for c, (img, label) in enumerate(
            ((clean[f], f"frame {f} clean"), (adv[f], "adversarial"), (heat, f"|delta| (max {scale}/255)"))
        ):
            x = pad + c * (cell_w + pad)
            tile = Image.fromarray(img.numpy()).resize((cell_w, cell_h), Image.Resampling.NEAREST)
            sheet.paste(tile, (x, y + head - 2))
            draw.text((x, y + 2), label, fill=(230, 230, 230))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
