"""The render stage: pictures of a written perturbation.

A colour video of |adversarial - clean| (`S.heatmap.mp4`), a PNG contact sheet of key frames
(`S.heatmap.png`), a per-frame chart (`S.frames.png`, with frame-level predictions when the model has
them) and the attack's curve (`S.curve.png`). Everything here reads decoded 8-bit frames and the
report's numbers; nothing here changes a pixel of the adversarial video.

The videos come as the video layer gives them: the clean one as `decode`'s `SampledFrames` and the
written one as `compare`'s `Comparison.written` (or both whole, as `Video`s). Neither is held whole
unless it was small: the heatmap video is painted frame by frame while both are decoded in lockstep
(`vidattack.video.map_frames`), keeping on the way the few frames the contact sheet shows.

    heatmap.py   the colour scale, `heatmap_rgb` (a pure, vectorised colour mapping), the annotated
                 heatmap video's frames (`HeatmapPainter`), key frames and the contact sheet
    plots.py     the per-frame chart and the curve (matplotlib, no pyplot)
    text.py      the font and file names it can draw
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from vidattack import cancel
from vidattack.pipeline.outputs import OUTPUT_FILES
from vidattack.pipeline.render.heatmap import (
    HeatmapPainter,
    change_levels,
    contact_sheet,
    heatmap_rgb,
    key_frames,
    level_colours,
)
from vidattack.pipeline.render.plots import CURVE_NOTES, curve_names, history_chart, per_frame_chart

if TYPE_CHECKING:
    from typing import TypeAlias

    from vidattack.attacks.context import StepFn
    from vidattack.pipeline.outputs import Outputs
    from vidattack.video import SampledFrames, Video

    #: A decoded video as the render stage takes it: whole, or streamed from its file.
    Frames: TypeAlias = Video | SampledFrames

__all__ = [
    "ROLES",
    "HeatmapPainter",
    "Rendered",
    "contact_sheet",
    "curve_names",
    "heatmap_rgb",
    "history_chart",
    "key_frames",
    "level_colours",
    "magnitude_scale",
    "per_frame_chart",
    "render",
]

#: The pictures `render` can draw, by their role in `Outputs` and the report's `outputs` (the picture
#: rows of `vidattack.pipeline.outputs.OUTPUT_FILES`, in their order).
ROLES = tuple(f.role for f in OUTPUT_FILES if f.picture)

#: Frames handled at once: bounds the temporaries for long high-resolution videos.
CHUNK = 8


def magnitude_scale(clean: Tensor, adv: Tensor) -> int:
    """The largest per-pixel change in 8-bit levels (at least 1), a few frames at a time."""
    top = 0
    for s in range(0, clean.shape[0], CHUNK):
        cancel.check()
        top = max(top, int(change_levels(clean[s : s + CHUNK], adv[s : s + CHUNK]).amax()))
    return max(top, 1)


@dataclass(frozen=True)
class Rendered:
    """The pictures a job drew: role -> path (in the order of `ROLES`), the largest change in 8-bit
    levels (marked on the colour bars), and seconds per picture."""

    paths: dict[str, Path]
    scale: int
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


def render(
    clean: Frames,
    adv: Frames | Tensor,
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
    progress: StepFn | None = None,
    curve_labels: Mapping[str, str] | None = None,
    fooled: bool | None = None,
) -> Rendered:
    """Draw the pictures named in `which` (default: all of `ROLES`) of the written video `adv` against
    `clean`: contact sheet, per-frame chart, the attack's curve (when it has one, against `x_axis`:
    "step" for white-box attacks, "queries" for black-box ones) and the heatmap video.

    `clean` is the source video (`decode`'s `SampledFrames`, or a whole `Video`); `adv` the written
    one (`Comparison.written`, a `Video`, or its frames `(T, H, W, 3)` uint8 when `clean` is a `Video`).
    `stats` are the perturbation's measures (`Comparison.stats()` or `perturbation_stats`): the key
    frames and the colour scale come from them. `sampled` are the frames the model looks at (others
    are shown as such); `attack` picks a caption for curves that need one; `curve_labels` name the
    curve's y axes (`curve_names`: the objective and its class) and `fooled` (does the written video
    fool the model) completes its caption; `progress(done, total)` is called after each picture.
    """
    wanted = [r for r in ROLES if which is None or r in which]
    unknown = set(which or ()) - set(ROLES)
    if unknown:
        raise ValueError(f"expected pictures among {', '.join(ROLES)}, got {', '.join(sorted(unknown))}")
    from vidattack.video import Video

    if isinstance(adv, Tensor):
        if not isinstance(clean, Video):
            raise ValueError("expected the written video as decoded frames only beside a whole clean Video")
        adv = clean.with_frames(adv)
    scale = max(round(stats["linf"] * 255), 1)  # the largest change in levels, as magnitude_scale
    per_frame = stats["per_frame_map"]
    shown = key_frames(per_frame) if "heatmap_png" in wanted else []
    # the heatmap video goes first: the pass that paints it also keeps the contact sheet's frames
    order = sorted(wanted, key=lambda r: r != "heatmap_video")
    kept: dict[int, tuple[Tensor, Tensor]] = {}
    paths: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for done, role in enumerate(order, start=1):
        start = time.perf_counter()
        if role == "heatmap_png":
            if not kept:
                kept = frames_at(clean, adv, shown)
            contact_sheet(
                outputs.heatmap_png,
                {f: c for f, (c, _) in kept.items()},
                {f: a for f, (_, a) in kept.items()},
                shown,
                title=title,
                sampled=sampled,
                num_frames=clean.num_frames,
            )
            paths[role] = outputs.heatmap_png
        elif role == "frames_plot":
            per_frame_chart(
                outputs.frames_plot,
                per_frame,
                frame_predictions=frame_predictions,
                sampled=sampled,
                title=title,
                linf=stats["linf"],
            )
            paths[role] = outputs.frames_plot
        elif role == "curve_plot":
            if history_chart(
                outputs.curve_plot,
                history,
                x=x_axis,
                title=title,
                note=CURVE_NOTES.get(attack),
                names=curve_labels,
                fooled=fooled,
            ):
                paths[role] = outputs.curve_plot
        elif role == "heatmap_video":
            kept = heatmap_video(
                clean,
                adv,
                outputs.heatmap_video,
                scale,
                sampled,
                overwrite=overwrite,
                keep=shown,
                title=title,
            )
            paths[role] = outputs.heatmap_video
        seconds[role] = time.perf_counter() - start
        if progress is not None:
            progress(done, len(order))
    return Rendered({r: paths[r] for r in ROLES if r in paths}, scale, seconds)


def frames_at(clean: Frames, adv: Frames, ids: Collection[int]) -> dict[int, tuple[Tensor, Tensor]]:
    """`{frame id: (clean frame, written frame)}` at `ids`, read in lockstep from memory or decoded
    from the files up to the last of them (no more than those frames kept)."""
    from vidattack.video import iter_frames

    wanted, last = set(ids), max(ids, default=-1)
    kept: dict[int, tuple[Tensor, Tensor]] = {}
    if last < 0:
        return kept
    with iter_frames(clean) as a, iter_frames(adv) as b:
        for i, (c, w) in enumerate(zip(a, b, strict=False)):
            if i in wanted:
                kept[i] = (c.clone(), w.clone())
            if i >= last:
                break
    return kept


def heatmap_video(
    clean: Frames,
    adv: Frames,
    path: Path,
    scale: int,
    sampled: Collection[int] | None,
    *,
    overwrite: bool,
    keep: Collection[int] = (),
    title: str = "",
) -> dict[int, tuple[Tensor, Tensor]]:
    """Write the annotated heatmap video (H.264 for players), one frame at a time while both videos are
    decoded in lockstep: scaled up when small, with a colour bar strip; frames the model never sampled
    shown dim grey and labelled. Returns the `(clean, written)` frames at `keep`, met on the way."""
    from vidattack.video import map_frames

    height, width = _size(clean)
    painter = HeatmapPainter.for_video(height, width, max_level=scale, sampled=sampled, title=title)
    wanted = set(keep)
    kept: dict[int, tuple[Tensor, Tensor]] = {}

    def paint(index: int, c: Tensor, a: Tensor) -> Tensor:
        if index in wanted:
            kept[index] = (c.clone(), a.clone())
        return painter(c[None], a[None], [index])[0]

    # upright frames of a new size, with their own notes: the annotation must not be rotated by a
    # display matrix, and nothing about this encode belongs in the input video's notes
    header = dataclasses.replace(clean, rotation=0, notes=[])
    map_frames(header, adv, paint, path, codec="delivery", overwrite=overwrite, copy_audio=False)
    return kept


def _size(video: Frames) -> tuple[int, int]:
    return video.height, video.width
