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
from collections.abc import Callable, Collection, Mapping, Sequence
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
    "RenderJob",
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


@dataclass(frozen=True)
class RenderJob:
    """What `render` draws from: the source video `clean` (`decode`'s `SampledFrames`, or a whole
    `Video`) and the written one `adv` (`Comparison.written`, a `Video`, or its frames `(T, H, W, 3)`
    uint8 when `clean` is a `Video`); the perturbation's measures `stats` (`Comparison.stats()` or
    `perturbation_stats`: the key frames and the colour scale come from them); where the pictures go
    (`outputs`); the attack's `history` and its curve's `x_axis` ("step" for white-box attacks,
    "queries" for black-box ones), `attack` (which picks a caption for curves that need one), the
    model's `frame_predictions`, the pictures' `title`, whether the heatmap video may `overwrite`,
    the frames the model looks at (`sampled`; others are shown as such), the curve's y-axis names
    (`curve_labels`, from `curve_names`: the objective and its class) and whether the written video
    fools the model (`fooled`, which completes the curve's caption)."""

    clean: Frames
    adv: Frames | Tensor
    stats: dict[str, Any]
    outputs: Outputs
    history: Sequence[dict[str, float]] = ()
    frame_predictions: dict[str, Any] | None = None
    title: str = ""
    overwrite: bool = False
    x_axis: str = "step"
    attack: str = ""
    sampled: Collection[int] | None = None
    curve_labels: Mapping[str, str] | None = None
    fooled: bool | None = None


@dataclass
class _Drawing:
    """One `render` call's shared state: the job (with `adv` as frames the drawers can read), the
    colour scale, the contact sheet's key frames and the frames kept for it on the way."""

    job: RenderJob
    adv: Frames
    scale: int
    shown: list[int]
    kept: dict[int, tuple[Tensor, Tensor]] = dataclasses.field(default_factory=dict)


def _draw_contact_sheet(d: _Drawing, path: Path) -> bool:
    if not d.kept:  # the heatmap video's pass keeps them when it ran first
        d.kept = frames_at(d.job.clean, d.adv, d.shown)
    contact_sheet(
        path,
        {f: c for f, (c, _) in d.kept.items()},
        {f: a for f, (_, a) in d.kept.items()},
        d.shown,
        title=d.job.title,
        sampled=d.job.sampled,
        num_frames=d.job.clean.num_frames,
    )
    return True


def _draw_frames_plot(d: _Drawing, path: Path) -> bool:
    job = d.job
    per_frame_chart(
        path,
        job.stats["per_frame_map"],
        frame_predictions=job.frame_predictions,
        sampled=job.sampled,
        title=job.title,
        linf=job.stats["linf"],
    )
    return True


def _draw_curve_plot(d: _Drawing, path: Path) -> bool:
    job = d.job  # an attack without a history (or a flat one) has no curve
    return history_chart(
        path,
        job.history,
        x=job.x_axis,
        title=job.title,
        note=CURVE_NOTES.get(job.attack),
        names=job.curve_labels,
        fooled=job.fooled,
    )


def _draw_heatmap_video(d: _Drawing, path: Path) -> bool:
    job = d.job
    d.kept = heatmap_video(
        job.clean, d.adv, path, d.scale, job.sampled, overwrite=job.overwrite, keep=d.shown, title=job.title
    )
    return True


#: How each picture role of `OUTPUT_FILES` is drawn: `(state, path) -> whether a file was written`.
DRAWERS: dict[str, Callable[[_Drawing, Path], bool]] = {
    "heatmap_png": _draw_contact_sheet,
    "frames_plot": _draw_frames_plot,
    "curve_plot": _draw_curve_plot,
    "heatmap_video": _draw_heatmap_video,
}
if set(DRAWERS) != set(ROLES):  # a new picture row in the outputs table needs its drawer here
    raise ImportError(f"render draws {sorted(DRAWERS)}, the outputs table declares {sorted(ROLES)}")


def render(
    job: RenderJob, *, which: Collection[str] | None = None, progress: StepFn | None = None
) -> Rendered:
    """Draw the pictures named in `which` (default: all of `ROLES`) of `job`'s written video against
    its clean one (`RenderJob` says what each field is), each by its role's function in `DRAWERS`:
    contact sheet, per-frame chart, the attack's curve (when it has one) and the heatmap video.
    `progress(done, total)` is called after each picture.
    """
    wanted = [r for r in ROLES if which is None or r in which]
    unknown = set(which or ()) - set(ROLES)
    if unknown:
        raise ValueError(f"expected pictures among {', '.join(ROLES)}, got {', '.join(sorted(unknown))}")
    from vidattack.video import Video

    adv = job.adv
    if isinstance(adv, Tensor):
        if not isinstance(job.clean, Video):
            raise ValueError("expected the written video as decoded frames only beside a whole clean Video")
        adv = job.clean.with_frames(adv)
    scale = max(round(job.stats["linf"] * 255), 1)  # the largest change in levels, as magnitude_scale
    shown = key_frames(job.stats["per_frame_map"]) if "heatmap_png" in wanted else []
    drawing = _Drawing(job, adv, scale, shown)
    # the heatmap video goes first: the pass that paints it also keeps the contact sheet's frames
    order = sorted(wanted, key=lambda r: r != "heatmap_video")
    paths: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for done, role in enumerate(order, start=1):
        start = time.perf_counter()
        path = job.outputs.path(role)
        if DRAWERS[role](drawing, path):
            paths[role] = path
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
