"""Digests of what every video writer produces, to show a change to the writers keeps their files.

    python benchmarks/writer_digests.py > before.txt     # on the old tree
    python benchmarks/writer_digests.py > after.txt      # on the new one
    diff before.txt after.txt

Four generated sources (AAC audio; odd size, rotated 90 degrees, 25 fps; Opus in MKV; no audio) are
written by `save_video` (lossless and delivery codecs, five containers) and `write_delivery` (h264,
h264 at crf 30, vp9). Each output gets two digests read back by demuxing: `layout` (streams, and every
packet's stream, pts, dts and key flag in file order: what the muxer decided) and `payload` (the packet
bytes: what the encoders made). Whole-file hashes are no use: MKV/WebM write a random segment id.
libx264 is not bit-exact from run to run in this FFmpeg build (see `vidattack.delivery.encode`), so
the payloads of yuv420p H.264 files (`write_delivery` h264, and `save_video`'s delivery codec in MP4,
MOV and MKV) can differ between two runs of the same tree; every layout and every other payload
repeats.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vidattack.delivery.encode import write_delivery  # noqa: E402
from vidattack.delivery.spec import parse_delivery  # noqa: E402
from vidattack.video import load_video, save_video  # noqa: E402


def moving_frames(t: int = 12, h: int = 48, w: int = 64) -> torch.Tensor:
    """A red square moving right over a gradient: `(T, H, W, 3)` uint8."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = torch.empty((t, h, w, 3), dtype=torch.uint8)
    for i in range(t):
        frame = torch.stack((xs * 255 // w, ys * 255 // h, torch.full_like(xs, 90)), dim=-1)
        frame[10:30, 4 + 2 * i : 24 + 2 * i] = torch.tensor([230, 40, 40])
        out[i] = frame
    return out


def source(
    path: Path, frames: torch.Tensor, fps: int = 10, audio: str | None = "aac", rotation: int = 0
) -> Path:
    """A lossless clip with a sine tone as long as the video in codec `audio` (None: silent)."""
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264rgb", rate=fps, options={"qp": "0"})
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, frame in enumerate(frames.numpy()):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        if sound is not None:
            n = 48000 * frames.shape[0] // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
            fmt = sound.codec_context.codec.audio_formats[0].name
            resampler = av.AudioResampler(format=fmt, layout="mono", rate=48000)
            for start in range(0, n, 960):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 960], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 48000, start
                for piece in resampler.resample(chunk):
                    out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
    return path


def digest(path: Path) -> str:
    """`layout` and `payload` digests of a written file (see the module docstring)."""
    layout, payload = hashlib.sha256(), hashlib.sha256()
    with av.open(str(path)) as container:
        for stream in container.streams:
            layout.update(f"{stream.type}:{stream.codec_context.name}:{stream.time_base};".encode())
        for packet in container.demux():
            if packet.size == 0:
                continue
            layout.update(f"{packet.stream.index},{packet.pts},{packet.dts},{packet.is_keyframe};".encode())
            payload.update(bytes(packet))
    return f"layout {layout.hexdigest()[:10]} payload {payload.hexdigest()[:10]}"


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="writer-digests-"))
    sources = {
        "aac": source(folder / "aac.mp4", moving_frames()),
        "odd_rot": source(folder / "odd_rot.mp4", moving_frames(9, 47, 63), fps=25, rotation=90),
        "opus": source(folder / "opus.mkv", moving_frames(), audio="libopus"),
        "silent": source(folder / "silent.mp4", moving_frames(), audio=None),
    }
    rows: dict[str, str] = {}
    for name, path in sources.items():
        video = load_video(path)
        adv = video.with_frames(video.frames.flip(-1).contiguous())
        for ext in (".mp4", ".mkv", ".avi", ".webm", ".mov"):
            for codec in ("lossless", "delivery"):
                out = folder / f"{name}-{codec}{ext}"
                save_video(adv, out, codec=codec)
                rows[out.name] = digest(out)
        for spec in ("h264", "h264:crf=30", "vp9"):
            out = folder / f"{name}-deliver-{spec.replace(':', '_')}{'.webm' if spec == 'vp9' else '.mp4'}"
            record = write_delivery(adv, out, parse_delivery(spec))
            rows[out.name] = f"{digest(out)} audio {record.audio} notes {list(record.notes)}"
    for name in sorted(rows):
        print(name, rows[name])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
