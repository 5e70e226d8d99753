"""What each container and codec can hold: file extensions, muxers, lossless and delivery encodings.

Facts relied on (checked with PyAV 18.1 / FFmpeg 8.1, see tests/test_video.py):

- `libx264rgb` at `qp=0` with `rgb24`, `ffv1` with `bgr0` and `libvpx-vp9` with `lossless=1` and `gbrp`
  give back the written RGB frames bit for bit, at odd sizes too. Which one is used depends on what the
  container can hold (`LOSSLESS`).
- MP4, MOV, M4V, 3GP, MKV and WebM keep a display matrix written with `VideoStream.set_display_rotation`;
  AVI, MPEG-TS, MPEG-PS, FLV and ASF (.wmv) drop it (`KEEPS_ROTATION`).
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import av

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}
)

# The FFmpeg muxer for each extension; passed explicitly because the temp file's name must not decide.
MUXERS: dict[str, str] = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".3gp": "3gp",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".flv": "flv",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".wmv": "asf",
}


@dataclass(frozen=True)
class Encoding:
    """An encoder, its pixel format and options."""

    codec: str
    pix_fmt: str
    options: dict[str, str]
    even_size: bool = False  # 4:2:0 chroma needs even width and height


_X264RGB = Encoding("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"})
# ffv1 rather than libx264rgb in AVI and ASF: those muxers mishandle B-frame timestamps (frames came
# back shifted by one in testing), and ffv1 is intra-only.
_FFV1 = Encoding("ffv1", "bgr0", {})
_VP9_LOSSLESS = Encoding("libvpx-vp9", "gbrp", {"lossless": "1", "deadline": "realtime", "cpu-used": "8"})
LOSSLESS: dict[str, Encoding] = {ext: _X264RGB for ext in MUXERS} | {
    ".avi": _FFV1,
    ".wmv": _FFV1,
    ".webm": _VP9_LOSSLESS,
}

# "veryfast": delivery copies (heatmaps) are for looking at; medium took minutes on a long 1080p video
_X264_DELIVERY = Encoding("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, even_size=True)
# H.264 in AVI and ASF came back shifted by one frame even without B-frames; MPEG-4 Part 2 (the
# classic AVI codec) at fixed quantizer 2 (global_quality = 2 * FF_QP2LAMBDA) keeps its timestamps.
_MPEG4_DELIVERY = Encoding("mpeg4", "yuv420p", {"flags": "+qscale", "global_quality": "236"}, even_size=True)
DELIVERY: dict[str, Encoding] = {ext: _X264_DELIVERY for ext in MUXERS} | {
    ".avi": _MPEG4_DELIVERY,
    ".wmv": _MPEG4_DELIVERY,
    ".webm": Encoding("libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "row-mt": "1"}, even_size=True),
}

KEEPS_ROTATION: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".3gp", ".mkv", ".webm"})

# AVI is frame-based: a fine time base makes its muxer write an empty chunk per unused tick, and the
# frame count and timestamps read back come out wrong. It gets one tick per frame instead. Its audio
# has no timestamps (position is implied by the samples), so audio before time 0 (AAC priming) is
# dropped rather than let it shift the video.
CONSTANT_RATE: frozenset[str] = frozenset({".avi"})

CODEC_CHOICES = ("lossless", "delivery")


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of `VIDEO_EXTENSIONS` (any case); the file is not opened."""
    return pathlib.Path(path).suffix.lower() in VIDEO_EXTENSIONS


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for `yuv420p`, 10 for `yuv420p10le`); 8 when unknown."""
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.FFmpegError):
        return 8


def has_alpha(pix_fmt: str) -> bool:
    """True when the pixel format carries an alpha channel."""
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.FFmpegError):
        return False
