"""A candidate video as it is sent: its content hash (the cache key) and its lossless file bytes."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from fractions import Fraction

import av
import torch
from torch import Tensor

from vidattack.video.formats import LOSSLESS
from vidattack.video.mux import add_video_stream

#: What every candidate is encoded with: the lossless writer's MP4 encoding (RGB H.264 at qp 0), so
#: the service decodes exactly the 8-bit frames the attack chose.
ENCODING = LOSSLESS[".mp4"]
CODEC_NOTE = f"{ENCODING.codec} ({ENCODING.pix_fmt}, qp {ENCODING.options.get('qp')}, lossless) in MP4"


def to_uint8(video: Tensor) -> Tensor:
    """`(T, 3, H, W)` float in [0, 1] -> `(T, H, W, 3)` uint8 on the CPU: the frames the file holds."""
    return (video.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


@dataclass(frozen=True)
class CandidateTiming:
    """When each frame of a candidate is shown: `pts` in `time_base` units and the declared `rate`.

    The service samples the file by time, so a candidate carries the source's own timestamps (variable
    frame rate included); `steady(T, fps)` is a constant rate for frames that come without a source."""

    pts: tuple[int, ...]
    time_base: Fraction
    rate: Fraction

    @classmethod
    def steady(cls, num_frames: int, fps: int | Fraction) -> CandidateTiming:
        """`num_frames` frames at a constant `fps`, the first at 0."""
        return cls(tuple(range(num_frames)), Fraction(1, 1) / Fraction(fps), Fraction(fps))

    def describe(self) -> str:
        return f"{self.rate}@{self.time_base}:{','.join(map(str, self.pts))}"


def candidate_key(frames: Tensor, timing: CandidateTiming) -> str:
    """The SHA-256 of the frames `(T, H, W, 3)` uint8, their shape and timing: equal keys, equal files."""
    h = hashlib.sha256()
    h.update(f"{tuple(frames.shape)}@{timing.describe()};".encode())
    h.update(frames.contiguous().numpy().tobytes())
    return h.hexdigest()


def derived_key(frames: Tensor, timing: CandidateTiming, how: str) -> str:
    """The key of what is sent when `frames` `(T, H, W, 3)` uint8 are first transformed as `how` says
    (a `--robust-to` draw): the query is the frames and the transform, whatever bytes the transform
    gives this time (libx264 does not always give the same twice), so the cache and `--resume` find it."""
    return hashlib.sha256(f"{candidate_key(frames, timing)};{how}".encode()).hexdigest()


def encode_candidate(frames: Tensor, timing: CandidateTiming) -> bytes:
    """The MP4 bytes of `frames` `(T, H, W, 3)` uint8 shown at `timing`, lossless (decodes to the same
    frames, at the same times)."""
    if len(timing.pts) != int(frames.shape[0]):
        raise ValueError(f"expected {frames.shape[0]} timestamps, got {len(timing.pts)}")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        size = (int(frames.shape[2]), int(frames.shape[1]))
        stream = add_video_stream(
            out,
            ENCODING.codec,
            ENCODING.options,
            rate=timing.rate,
            size=size,
            pix_fmt=ENCODING.pix_fmt,
            time_base=timing.time_base,
        )
        stream.thread_count = 1  # one encoder thread per request: concurrency comes from requests
        for frame, pts in zip(frames.numpy(), timing.pts, strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = pts, timing.time_base
            for packet in stream.encode(picture):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()
