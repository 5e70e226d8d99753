"""Streaming comparison of a source and the file written from it: the perturbation statistics and the
written file's sampled frames, from one lockstep decode of each (the written file is decoded once)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from vidattack.errors import VidattackError
from vidattack.video.decode import FrameReader, Source, _decoding, _sampled, _WholeVideo, iter_frames
from vidattack.video.paths import PathLike, display_path
from vidattack.video.probe import probe
from vidattack.video.types import SampledFrames


@dataclass
class FrameDiff:
    """The change of one frame, in 8-bit levels: `linf` (largest), `abs_sum` (sum of |delta| over all
    pixels and channels), `sq_sum` (sum of delta squared), `ratio_max` (largest max(a/x, x/a) over
    changed values; 0 -> non-zero is infinite, unchanged frames 1) and `values` (H * W * 3)."""

    linf: int
    abs_sum: int
    sq_sum: int
    ratio_max: float
    values: int

    @property
    def map(self) -> float:
        """Mean absolute perturbation in levels (0..255)."""
        return self.abs_sum / self.values

    @property
    def l2(self) -> float:
        """L2 norm of the frame's change in levels."""
        return math.sqrt(self.sq_sum)


def frame_diff(clean: torch.Tensor, written: torch.Tensor) -> FrameDiff:
    """Compare one pair of `(H, W, 3)` uint8 frames exactly (integer sums)."""
    c = clean.to(torch.int16).flatten()
    a = written.to(torch.int16).flatten()
    d = (a - c).abs_()
    linf = int(d.max()) if d.numel() else 0
    ratio = 1.0
    changed = d != 0
    if bool(changed.any()):
        cc, aa = c[changed].float(), a[changed].float()
        small, big = torch.minimum(cc, aa), torch.maximum(cc, aa)
        ratio = math.inf if bool((small == 0).any()) else float((big / small).max())
    sq = int(d.to(torch.int64).square_().sum())
    return FrameDiff(linf, int(d.sum(dtype=torch.int64)), sq, ratio, int(d.numel()))


@dataclass
class Comparison:
    """What `compare` measured: one `FrameDiff` per frame and the written file's decode.

    `written` holds the written file's frames at the compared `frame_ids` (to classify again), its
    timing and notes, and its whole video in `all_frames` when that was small enough to keep.
    """

    frames: list[FrameDiff]
    written: SampledFrames
    per_frame_map: list[float] = field(init=False)

    def __post_init__(self) -> None:
        # In [0, 1] pixel units, as report.perturbation_stats gives it.
        self.per_frame_map = [f.abs_sum / (f.values * 255.0) for f in self.frames]

    @property
    def linf_levels(self) -> int:
        """The largest change of any value, in levels."""
        return max((f.linf for f in self.frames), default=0)

    @property
    def scale(self) -> int:
        """The heatmap scale: the largest change in levels, at least 1 (`heatmap.magnitude_scale`)."""
        return max(self.linf_levels, 1)

    def stats(self) -> dict[str, Any]:
        """The perturbation's measures (see `summarize`)."""
        return summarize(self.frames)


def summarize(frames: Sequence[FrameDiff]) -> dict[str, Any]:
    """The measures of a whole video's change, in [0, 1] pixel units, from its frames' `FrameDiff`s:
    `linf`, `l2`, `map`, `ratio_max` (infinite when a black value changed), `frames_perturbed`,
    `perturbed_frames`, `sparsity` (share of frames left untouched), `per_frame_map`."""
    t = len(frames)
    per_frame_map = [f.abs_sum / (f.values * 255.0) for f in frames]
    perturbed = [i for i, m in enumerate(per_frame_map) if m > 0]
    sq = sum(f.sq_sum for f in frames)
    return {
        "linf": max((f.linf for f in frames), default=0) / 255.0,
        "l2": math.sqrt(float(sq)) / 255.0,
        "map": (sum(per_frame_map) / t) if t else 0.0,
        "ratio_max": max((f.ratio_max for f in frames), default=1.0),
        "frames_perturbed": len(perturbed),
        "perturbed_frames": perturbed,
        "sparsity": 1.0 - len(perturbed) / t if t else 1.0,
        "per_frame_map": per_frame_map,
    }


def lockstep(
    a: Iterable[torch.Tensor], b: Iterable[torch.Tensor], shown: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs of frames from two equally long sequences of equally sized frames; `VidattackError`
    naming `shown` (the second one) when the lengths or sizes differ."""
    ia, ib = iter(a), iter(b)
    count = 0
    for x in ia:
        y = next(ib, None)
        if y is None:
            raise VidattackError(f"{shown} has {count} frames, expected more")
        if x.shape != y.shape:
            raise VidattackError(
                f"{shown} decodes to frames of {tuple(y.shape)} at frame {count}, expected {tuple(x.shape)}"
            )
        yield x, y
        count += 1
    if next(ib, None) is not None:
        raise VidattackError(f"{shown} has more than the expected {count} frames")


def compare(
    source: Source,
    written_path: PathLike,
    frame_ids: Sequence[int] | None = None,
    *,
    keep_all_bytes: int = 0,
    verbose: bool = False,
) -> Comparison:
    """Decode `written_path` once, in lockstep with `source`, and measure the change of every frame.

    `source` is the clean video: a `decode_sampled` result (its kept `all_frames` spare decoding it
    again), a `Video`, or a path. The written file's frames at `frame_ids` (default: the source's own
    `frame_ids` when it is a `SampledFrames`) come back in `Comparison.written` for re-classification,
    with the whole written video in `written.all_frames` when it is at most `keep_all_bytes` (for the
    heatmap pass). Raises `VidattackError` when the two differ in length or frame size, `BadVideoError`
    when the written file does not decode.
    """
    if frame_ids is None:
        frame_ids = source.frame_ids if isinstance(source, SampledFrames) else ()
    wanted = set(frame_ids)
    shown = display_path(written_path)
    info = probe(written_path, verbose=verbose)
    whole = _WholeVideo(info.frames, keep_all_bytes)
    kept: dict[int, Any] = {}
    diffs: list[FrameDiff] = []
    pts: list[int] = []
    with (
        iter_frames(source, verbose=verbose) as clean,
        _decoding(written_path),
        FrameReader(written_path, verbose=verbose) as reader,
    ):
        for index, (c, w) in enumerate(lockstep(clean, _written_frames(reader, pts), shown)):
            diffs.append(frame_diff(c, w))
            if index in wanted:
                kept[index] = w.numpy()
            if whole.wants(index, reader.size):
                whole.add(index, w.numpy())
        reader.check_not_empty()
        written = _sampled(reader, kept, pts, whole.result(len(pts)), info)
    return Comparison(frames=diffs, written=written)


def _written_frames(reader: FrameReader, pts: list[int]) -> Iterator[torch.Tensor]:
    # The written file's frames as tensors, recording each frame's pts on the way.
    for _, p, frame in reader:
        pts.append(p)
        yield torch.from_numpy(reader.rgb(frame))
