"""Reading and writing video files: the only package of vidattack that touches codecs and containers.

Memory is bounded before decoding, not after. The pipeline's stages call:

- decode: `decode_planned(path, plan, budget_bytes=...)` = `probe` (container only) -> the model's plan
  on the declared frame count -> `check_budget` (refuses what would not fit) -> `decode_sampled` (one
  streaming pass keeping only the sampled frames, plus every frame's timing).
- write: `rewrite(sampled, dst, sampled.replacements(adv))`: re-decodes the source and encodes every
  frame losslessly with the adversarial ones substituted, audio copied, atomically.
- verify: `compare(sampled, dst)`: decodes the written file once, in lockstep with the source:
  perturbation statistics (`Comparison.stats()` equals `report.perturbation_stats`) and the written
  file's sampled frames (`Comparison.written`) to classify again.
- render: `map_frames(sampled, comparison.written, fn, heatmap_path)`: the heatmap video, frame by frame.

`load_video` / `save_video` keep a whole `Video` in memory, for small clips and tests.
"""

from __future__ import annotations

from vidattack.video.compare import Comparison, FrameDiff, compare, frame_diff
from vidattack.video.decode import (
    FrameReader,
    Source,
    decode_frames,
    decode_planned,
    decode_sampled,
    iter_frames,
    load_video,
    sanitize_pts,
)
from vidattack.video.encode import map_frames, rewrite, save_video
from vidattack.video.formats import VIDEO_EXTENSIONS, is_video_path
from vidattack.video.limits import (
    DEFAULT_MAX_MEMORY,
    KEEP_ALL_BYTES,
    MAX_FRAMES,
    check_budget,
    estimate_bytes,
    format_bytes,
    parse_bytes,
)
from vidattack.video.paths import display_path
from vidattack.video.probe import VideoInfo, probe
from vidattack.video.types import SampledFrames, Video

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "KEEP_ALL_BYTES",
    "MAX_FRAMES",
    "VIDEO_EXTENSIONS",
    "Comparison",
    "FrameDiff",
    "FrameReader",
    "SampledFrames",
    "Source",
    "Video",
    "VideoInfo",
    "check_budget",
    "compare",
    "decode_frames",
    "decode_planned",
    "decode_sampled",
    "display_path",
    "estimate_bytes",
    "format_bytes",
    "frame_diff",
    "is_video_path",
    "iter_frames",
    "load_video",
    "map_frames",
    "parse_bytes",
    "probe",
    "rewrite",
    "sanitize_pts",
    "save_video",
]
