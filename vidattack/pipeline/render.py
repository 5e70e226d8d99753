"""The render stage: pictures of a written perturbation.

A colour video of |adversarial - clean|, a PNG contact sheet of key frames, a per-frame bar chart
(with frame-level predictions when the model has them) and the attack's curve. Everything here reads
decoded 8-bit frames and the report's numbers; nothing here changes a pixel of the adversarial video.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from vidattack.files import write_atomic

if TYPE_CHECKING:
    from vidattack.pipeline.stages import Outputs
    from vidattack.video import Video


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


@dataclass(frozen=True)
class Rendered:
    """The pictures a job drew: role -> path (in the order written), and the heatmaps' colour scale
    (the 8-bit change drawn at full colour)."""

    paths: dict[str, Path]
    scale: int


def render(
    video: Video,
    adv_frames: Tensor,
    stats: dict[str, Any],
    outputs: Outputs,
    *,
    history: Sequence[dict[str, float]],
    frame_predictions: dict[str, Any] | None,
    title: str,
    overwrite: bool,
) -> Rendered:
    """Draw the contact sheet, the per-frame chart, the attack's curve (when it has one) and the heatmap
    video of `adv_frames` `(T, H, W, 3)` uint8 against `video`.

    `adv_frames` is overwritten with the heatmap: for a long 1080p video another full copy would not
    fit in memory, and the decoded frames are not needed afterwards.
    """
    from vidattack.video import save_video

    scale = magnitude_scale(video.frames, adv_frames)
    per_frame = stats["per_frame_map"]
    contact_sheet(outputs.heatmap_png, video.frames, adv_frames, key_frames(per_frame), scale, title)
    per_frame_chart(outputs.frames_plot, per_frame, frame_predictions=frame_predictions, title=title)
    paths = {"heatmap_png": outputs.heatmap_png, "frames_plot": outputs.frames_plot}
    if history_chart(outputs.curve_plot, history, title=title):
        paths["curve_plot"] = outputs.curve_plot
    heat = heatmap_frames_(video.frames, adv_frames, scale)
    save_video(
        video.with_frames(heat),
        outputs.heatmap_video,
        overwrite=overwrite,
        codec="delivery",
        copy_audio=False,
    )
    paths["heatmap_video"] = outputs.heatmap_video
    return Rendered(paths, scale)
