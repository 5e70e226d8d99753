"""`VideoInfo`: what a file's container declares, as `probe` reads it.

A module of its own so that the memory limits (`limits`), which budget from it, and `probe`, which
refuses files past those limits, do not import each other.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` read from a file's container about its first video stream.

    `width` and `height` are the upright size (after the display `rotation`, counter-clockwise degrees,
    one of 0/90/180/270); `stored_width`/`stored_height` are as coded. `frames` is the frame count and
    `frames_from` where it came from: "container" (the header's count), "packets" (video packets counted
    by demuxing, without decoding) or "duration" (duration x rate: a last resort, may be off by one);
    decoding may still find fewer (truncated file) or more (a header that lies). `pix_fmt` and
    `bit_depth` describe the coded samples (10 for `yuv420p10le`); `rate` is the average frame rate
    (None when the container has none) and `fps` the rate to assume; `duration` is in seconds (None if
    not declared).
    """

    path: pathlib.Path
    size_bytes: int
    container: str
    codec: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    frames: int
    frames_from: str
    pix_fmt: str
    bit_depth: int
    rate: Fraction | None
    fps: float
    time_base: Fraction
    duration: float | None
    rotation: int
    has_audio: bool
    video_streams: int
