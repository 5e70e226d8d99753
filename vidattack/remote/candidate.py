"""A candidate video as it is sent: its content hash (the cache key) and its lossless file bytes."""

from __future__ import annotations

import hashlib
import io

import av
import torch
from torch import Tensor

from vidattack.video.formats import LOSSLESS

#: What every candidate is encoded with: the lossless writer's MP4 encoding (RGB H.264 at qp 0), so
#: the service decodes exactly the 8-bit frames the attack chose.
ENCODING = LOSSLESS[".mp4"]
CODEC_NOTE = f"{ENCODING.codec} ({ENCODING.pix_fmt}, qp {ENCODING.options.get('qp')}, lossless) in MP4"


def to_uint8(video: Tensor) -> Tensor:
    """`(T, 3, H, W)` float in [0, 1] -> `(T, H, W, 3)` uint8 on the CPU: the frames the file holds."""
    return (video.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def candidate_key(frames: Tensor, fps: int) -> str:
    """The SHA-256 of the frames `(T, H, W, 3)` uint8, their shape and the rate: equal keys, equal files."""
    h = hashlib.sha256()
    h.update(f"{tuple(frames.shape)}@{fps};".encode())
    h.update(frames.contiguous().numpy().tobytes())
    return h.hexdigest()


def encode_candidate(frames: Tensor, fps: int) -> bytes:
    """The MP4 bytes of `frames` `(T, H, W, 3)` uint8 at `fps`, lossless (decodes to the same frames)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream(ENCODING.codec, rate=fps, options=dict(ENCODING.options))
        if not isinstance(stream, av.VideoStream):
            raise TypeError(f"expected a video stream from {ENCODING.codec}")
        stream.pix_fmt = ENCODING.pix_fmt
        stream.height, stream.width = int(frames.shape[1]), int(frames.shape[2])
        stream.thread_count = 1  # one encoder thread per request: concurrency comes from requests
        for frame in frames.numpy():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()
