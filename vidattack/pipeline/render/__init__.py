"""The render stage: pictures of a written perturbation.

A colour video of |adversarial - clean| (`S.heatmap.mp4`), a PNG contact sheet of key frames
(`S.heatmap.png`), a per-frame chart (`S.frames.png`, with frame-level predictions when the model has
them) and the attack's curve (`S.curve.png`). Everything here reads decoded 8-bit frames and the
report's numbers; nothing here changes a pixel of the adversarial video.

    heatmap.py   the colour scale, `heatmap_rgb` (a pure, vectorised colour mapping), the annotated
                 heatmap video's frames (`HeatmapPainter`), key frames and the contact sheet
    plots.py     the per-frame chart and the curve (matplotlib, no pyplot)
    text.py      the font and file names it can draw
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from vidattack.pipeline.render.heatmap import (
    HeatmapPainter,
    change_levels,
    contact_sheet,
    heatmap_rgb,
    key_frames,
    level_colours,
)
from vidattack.pipeline.render.plots import CURVE_NOTES, history_chart, per_frame_chart

if TYPE_CHECKING:
    from vidattack.pipeline.stages import Outputs
    from vidattack.video import Video

__all__ = [
    "ROLES",
    "HeatmapPainter",
    "Rendered",
    "contact_sheet",
    "heatmap_rgb",
    "history_chart",
    "key_frames",
    "level_colours",
    "magnitude_scale",
    "per_frame_chart",
    "render",
]

#: The pictures `render` can draw, by their role in `Outputs` and the report's `outputs`.
ROLES = ("heatmap_png", "frames_plot", "curve_plot", "heatmap_video")

#: Frames handled at once: bounds the temporaries for long high-resolution videos.
CHUNK = 8


def magnitude_scale(clean: Tensor, adv: Tensor) -> int:
    """The largest per-pixel change in 8-bit levels (at least 1), a few frames at a time."""
    top = 0
    for s in range(0, clean.shape[0], CHUNK):
        top = max(top, int(change_levels(clean[s : s + CHUNK], adv[s : s + CHUNK]).amax()))
    return max(top, 1)


@dataclass(frozen=True)
class Rendered:
    """The pictures a job drew: role -> path (in the order written), the largest change in 8-bit
    levels (marked on the colour bars), and seconds per picture."""

    paths: dict[str, Path]
    scale: int
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


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
    which: Collection[str] | None = None,
    x_axis: str = "step",
    attack: str = "",
    sampled: Collection[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Rendered:
    """Draw the pictures named in `which` (default: all of `ROLES`) of `adv_frames` `(T, H, W, 3)`
    uint8 against `video`: contact sheet, per-frame chart, the attack's curve (when it has one, against
    `x_axis`: "step" for white-box attacks, "queries" for black-box ones) and the heatmap video.

    `sampled` are the frames the model looks at (others are shown as such); `attack` picks a caption
    for curves that need one; `progress(done, total)` is called after each picture.
    `adv_frames` may be overwritten with the heatmap (large videos: another full copy would not fit in
    memory, and the decoded frames are not needed afterwards).
    """
    wanted = [r for r in ROLES if which is None or r in which]
    unknown = set(which or ()) - set(ROLES)
    if unknown:
        raise ValueError(f"expected pictures among {', '.join(ROLES)}, got {', '.join(sorted(unknown))}")
    scale = magnitude_scale(video.frames, adv_frames)
    paths: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    per_frame = stats["per_frame_map"]
    for done, role in enumerate(wanted, start=1):
        start = time.perf_counter()
        if role == "heatmap_png":
            frames = key_frames(per_frame)
            contact_sheet(outputs.heatmap_png, video.frames, adv_frames, frames, title=title, sampled=sampled)
            paths[role] = outputs.heatmap_png
        elif role == "frames_plot":
            per_frame_chart(
                outputs.frames_plot,
                per_frame,
                frame_predictions=frame_predictions,
                sampled=sampled,
                title=title,
            )
            paths[role] = outputs.frames_plot
        elif role == "curve_plot":
            if history_chart(
                outputs.curve_plot, history, x=x_axis, title=title, note=CURVE_NOTES.get(attack)
            ):
                paths[role] = outputs.curve_plot
        elif role == "heatmap_video":
            heatmap_video(video, adv_frames, outputs.heatmap_video, scale, sampled, overwrite=overwrite)
            paths[role] = outputs.heatmap_video
        seconds[role] = time.perf_counter() - start
        if progress is not None:
            progress(done, len(wanted))
    return Rendered(paths, scale, seconds)


def heatmap_video(
    video: Video,
    adv_frames: Tensor,
    path: Path,
    scale: int,
    sampled: Collection[int] | None,
    *,
    overwrite: bool,
) -> Path:
    """Write the annotated heatmap video (H.264 for players): scaled up when small, with a colour bar
    strip; frames the model never sampled shown dim grey and labelled. Overwrites `adv_frames` when the
    frames keep their size."""
    from vidattack.video import save_video

    painter = HeatmapPainter.for_video(video.height, video.width, max_level=scale, sampled=sampled)
    t = video.num_frames
    # large frames keep their shape: paint them in place, chunk by chunk
    out = adv_frames if painter.overlay else adv_frames.new_empty((t, *painter.out_size, 3))
    for s in range(0, t, CHUNK):
        e = min(s + CHUNK, t)
        out[s:e] = painter(video.frames[s:e], adv_frames[s:e], range(s, e))
    # upright frames of a new size, with their own notes: the annotation must not be rotated by a
    # display matrix, and nothing about this encode belongs in the input video's notes
    heat = dataclasses.replace(video, frames=out, rotation=0, notes=[])
    return save_video(heat, path, overwrite=overwrite, codec="delivery", copy_audio=False)
