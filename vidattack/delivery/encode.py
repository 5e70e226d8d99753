"""Delivery encodes: a playable H.264 / VP9 yuv420p copy of a `Video`, and the same encode in memory.

`write_delivery` writes the file a user uploads or streams: libx264 in MP4 with fast start (`moov`
before `mdat`, so a browser can play it while it downloads) or libvpx-vp9 in WebM, yuv420p, limited
range, tagged with its matrix; every frame at the source's pts and time base; the source's audio copied
packet for packet when the container takes that codec, else re-encoded (AAC for MP4, Opus for WebM).
It is written to a hidden temp file and renamed into place only when complete.

`roundtrip` runs exactly the same video encode (same colour conversion, codec options and threads)
into a `BytesIO` and decodes it back, for attacks that optimise the delivered video. With the same
frames, rate and CRF the two give the same decoded frames, up to one caveat: libx264 in the PyAV 18.1
/ FFmpeg 8.1 wheel is not bit-exact from run to run here. With identical yuv420p input (checked by
hash) and threads=1 (also with lookahead-threads=1, sync-lookahead=0), about one encode in ten inside
a long-lived process comes out a few bytes different, which moves decoded pixels by well under a
level on average. Tests therefore compare delivered frames with a tolerance; reports should take
the delivered prediction from the written file itself.

Which players open what (checked facts about the formats, not about every player version): H.264
High/Main yuv420p in MP4 plays in every current browser, on iOS/macOS (QuickTime, Safari), Android,
Windows' Films & TV and VLC; VP9 in WebM plays in Chrome, Firefox, Edge, Android and VLC, and in
Safari from macOS 11.3 / iOS 14; the lossless output (H.264 High 4:4:4 Predictive, RGB) plays in VLC,
mpv and FFmpeg-based players but in no browser and not in QuickTime.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import pathlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch

from vidattack import cancel
from vidattack.delivery.spec import CODECS, DeliverySpec
from vidattack.errors import BadParameterError, OutputExistsError, VidattackError
from vidattack.video import Video
from vidattack.video.mux import (
    AudioRefused,
    Muxer,
    add_video_stream,
    end_time,
    nominal_rate,
    open_audio_source,
    timed_packets,
)

__all__ = ["DeliveryFile", "mp4_top_level_boxes", "roundtrip", "write_delivery"]

log = logging.getLogger(__name__)

# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic codes: SMPTE 170M is the
# BT.601 525-line system; the 625-line one (BT.470BG) has the same matrix.
_TAGS: dict[str, tuple[int, int, int]] = {"bt601": (6, 6, 6), "bt709": (1, 1, 1)}
_SWS_COLORSPACE = {"bt601": "ITU601", "bt709": "ITU709"}
_MPEG_RANGE = 1  # AVCOL_RANGE_MPEG: limited ("tv") range, what browsers expect

# Audio codecs each delivery container holds as they are; others are re-encoded to the second item.
_AUDIO: dict[str, tuple[frozenset[str], str]] = {
    "mp4": (frozenset({"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}), "aac"),
    "webm": (frozenset({"opus", "vorbis"}), "libopus"),
}


@dataclass(frozen=True)
class DeliveryFile:
    """What `write_delivery` wrote: the file, its encode settings and facts a report needs."""

    path: pathlib.Path
    spec: DeliverySpec
    matrix: str
    width: int
    height: int
    num_frames: int
    size_bytes: int
    fast_start: bool | None  # None for WebM (no moov box; WebM puts its index first anyway)
    audio: str | None  # "copied aac", "re-encoded aac -> opus", or None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        """JSON-ready record for the report's `delivery` section (without predictions)."""
        return {
            "path": str(self.path),
            **self.spec.describe(),
            "matrix": self.matrix,
            "range": "limited",
            "width": self.width,
            "height": self.height,
            "frames": self.num_frames,
            "size_bytes": self.size_bytes,
            "fast_start": self.fast_start,
            "audio": self.audio,
            "notes": list(self.notes),
        }


def _reason(error: BaseException) -> str:
    strerror = getattr(error, "strerror", None)
    return str(strerror) if strerror else (str(error) or type(error).__name__)


def _to_yuv420p(array: np.ndarray, matrix: str) -> av.VideoFrame:
    # AREA makes swscale's 4:2:0 chroma the mean of each 2x2 block: the step colour.yuv420_path models.
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
    return frame.reformat(
        format="yuv420p",
        dst_colorspace=_SWS_COLORSPACE[matrix],
        dst_color_range="MPEG",
        interpolation="AREA",
        threads=1,  # one slice: the same conversion whatever the machine's core count
    )


def _add_video_stream(
    output: av.container.OutputContainer,
    spec: DeliverySpec,
    crf: int,
    size: tuple[int, int],
    rate: Fraction,
    time_base: Fraction,
    matrix: str,
    threads: int,
    rotation: int = 0,
) -> av.video.stream.VideoStream:
    options = spec.encoder_options(crf, threads)
    stream = add_video_stream(
        output,
        spec.encoder,
        options,
        rate=rate,
        size=size,
        pix_fmt="yuv420p",
        time_base=time_base,
        rotation=rotation,
    )
    # Tag the bitstream (H.264 VUI / VP9 colour config) so players convert back with the same matrix.
    ctx = stream.codec_context
    ctx.colorspace, ctx.color_primaries, ctx.color_trc = _TAGS[matrix]
    ctx.color_range = _MPEG_RANGE
    return stream


def _even_pad(array: np.ndarray) -> np.ndarray:
    # yuv420p needs even sizes: repeat the last row / column (save_video's delivery codec does the same)
    ph, pw = array.shape[-3] % 2, array.shape[-2] % 2
    if ph or pw:
        pad = [(0, 0)] * (array.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
        array = np.pad(array, pad, mode="edge")
    return array


def roundtrip(
    frames: torch.Tensor,
    spec: DeliverySpec,
    fps: float | Fraction = 25,
    *,
    crf: int | None = None,
    offset: int = 0,
    threads: int = 1,
) -> torch.Tensor:
    """Encode uint8 frames `(T, H, W, 3)` as `spec` would deliver them, in memory, and decode them back.

    The encode is `write_delivery`'s (same colour conversion, encoder options and threads) into a raw
    stream (H.264 Annex B or IVF), at `fps` with one tick per frame. `crf` overrides the spec's single
    CRF (needed when the spec holds a `--robust-to` range). `offset` first encodes that many copies of
    the first frame and drops them after decoding: the clip then starts `offset` frames into the
    codec's GOP and B-frame pattern, as a clip from the middle of a longer video does. Odd sizes are
    padded and cropped back. Returns `(T, H, W, 3)` uint8 on the CPU.
    """
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise BadParameterError(
            f"expected uint8 frames (T>0, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    if offset < 0:
        raise BadParameterError(f"expected offset >= 0, got {offset}")
    t, h, w, _ = frames.shape
    array = _even_pad(frames.detach().cpu().numpy())
    matrix = spec.matrix_for(h)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if rate <= 0:
        raise BadParameterError(f"expected fps > 0, got {fps}")
    codec_crf = spec.crf if crf is None else int(crf)
    try:
        data = _encode_raw(array, spec, codec_crf, rate, matrix, offset, threads)
        decoded = _decode_raw(data, spec)
    except av.FFmpegError as e:
        raise VidattackError(f"{spec.encoder} round trip failed: {_reason(e)}") from e
    decoded = decoded[offset:]
    if len(decoded) != t:
        raise VidattackError(f"{spec.encoder} round trip returned {len(decoded)} frames, expected {t}")
    out = torch.from_numpy(np.stack(decoded))  # (T, H', W', 3)
    return out[:, :h, :w].contiguous()


def _encode_raw(
    array: np.ndarray, spec: DeliverySpec, crf: int, rate: Fraction, matrix: str, offset: int, threads: int
) -> bytes:
    # array: (T, H, W, 3) uint8 with even H and W
    height, width = array.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=CODECS[spec.codec].raw_muxer) as output:
        stream = _add_video_stream(output, spec, crf, (width, height), rate, 1 / rate, matrix, threads)
        for i in range(offset + array.shape[0]):
            cancel.check()
            frame = _to_yuv420p(array[max(i - offset, 0)], matrix)
            frame.pts = i
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def _decode_raw(data: bytes, spec: DeliverySpec) -> list[np.ndarray]:
    decoded: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r", format=CODECS[spec.codec].raw_muxer) as source:
        for frame in source.decode(source.streams.video[0]):
            cancel.check()
            # np.array copies at once: to_ndarray's result may be a view into the frame's buffer.
            decoded.append(np.array(frame.to_ndarray(format="rgb24")))
    return decoded


def write_delivery(
    video: Video,
    path: str | os.PathLike[str],
    spec: DeliverySpec,
    *,
    overwrite: bool = False,
    copy_audio: bool = True,
    threads: int = 1,
) -> DeliveryFile:
    """Write `video` as the delivery copy `spec` describes (h264 -> MP4, vp9 -> WebM); return a record.

    yuv420p in limited range, matrix by `spec.matrix_for(height)` and tagged; MP4 gets fast start.
    Every frame keeps its pts in the source's time base and the nominal rate is the source's; display
    rotation is written back as `save_video` does. With `copy_audio`, the first audio stream of
    `video.path` (when `video.has_audio`) goes in up to the end of the video: copied if the container
    holds its codec, else re-encoded (AAC in MP4, Opus in WebM). `threads` is the encoder's thread
    count (1 keeps the file identical to `roundtrip`'s encode). Atomic: a hidden temp file beside
    `path` is renamed over it. Raises `BadParameterError` (extension does not match the codec, several
    CRFs), `OutputExistsError`, `VidattackError` (cannot write).
    """
    out = pathlib.Path(path)
    if out.suffix.lower() != spec.extension:
        raise BadParameterError(f"expected a {spec.extension} file for {spec.codec}, got {out.name!r}")
    crf = spec.crf
    if video.path is not None and out.exists() and os.path.samefile(out, video.path):
        raise VidattackError(f"refusing to overwrite the input video {out}")
    if out.is_dir():
        raise VidattackError(f"{out} is a directory")
    if not out.parent.is_dir():
        raise VidattackError(f"output folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite)")
    if any(b <= a for a, b in itertools.pairwise(video.pts)):
        raise BadParameterError("expected strictly increasing pts")

    notes: list[str] = []
    matrix = spec.matrix_for(video.height)
    if video.height % 2 or video.width % 2:
        notes.append(
            f"yuv420p needs even sizes: padded {video.width}x{video.height} to "
            f"{video.width + video.width % 2}x{video.height + video.height % 2} (edge pixels repeated)"
        )
    audio_source = video.path if copy_audio and video.has_audio and video.path is not None else None
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}{out.suffix}")
    try:
        audio = _encode_file(video, tmp, spec, crf, matrix, threads, audio_source, notes)
        os.replace(tmp, out)
    except (av.FFmpegError, OSError, ValueError, AudioRefused) as e:
        tmp.unlink(missing_ok=True)
        raise VidattackError(f"could not write {out}: {_reason(e)}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fast_start = None
    if spec.muxer == "mp4":
        boxes = mp4_top_level_boxes(out)
        fast_start = "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")
    k = video.rotation // 90
    height, width = video.height + video.height % 2, video.width + video.width % 2
    return DeliveryFile(
        path=out,
        spec=spec,
        matrix=matrix,
        width=width,
        height=height,
        num_frames=video.num_frames,
        size_bytes=out.stat().st_size,
        fast_start=fast_start,
        audio=audio,
        notes=tuple(notes) + ((f"display rotation {video.rotation} written back",) if k else ()),
    )


def _encode_file(
    video: Video,
    target: pathlib.Path,
    spec: DeliverySpec,
    crf: int,
    matrix: str,
    threads: int,
    audio_source: pathlib.Path | None,
    notes: list[str],
) -> str | None:
    rate = nominal_rate(video)
    k = video.rotation // 90
    size = (video.width + video.width % 2, video.height + video.height % 2)  # upright, even
    # Fast start: the muxer writes moov at the end, then moves it before mdat in a second pass.
    options = {"movflags": "+faststart"} if spec.muxer == "mp4" else {}
    audio_text: str | None = None
    with contextlib.ExitStack() as stack:
        output = stack.enter_context(av.open(str(target), mode="w", format=spec.muxer, options=options))
        stream = _add_video_stream(
            output, spec, crf, size, rate, video.time_base, matrix, threads, rotation=video.rotation
        )
        audio = None
        opened = open_audio_source(stack, audio_source) if audio_source is not None else None
        if opened is not None:
            audio_out, packets, audio_text = _audio(*opened, output, spec.muxer, end_time(video), notes)
            audio = (audio_out, packets)
        mux = Muxer(output, spec.muxer, audio)
        for i in range(video.num_frames):
            cancel.check()  # a signal stops the delivery encode at the next frame
            array = _even_pad(video.frames[i].cpu().numpy())
            if k:
                array = np.rot90(array, -k)  # back to the source's stored orientation
            frame = _to_yuv420p(array, matrix)
            frame.pts = video.pts[i]
            frame.time_base = video.time_base
            # muxed as encoded, the audio interleaved by time: a player streaming the file finds
            # audio next to its video
            mux.video(stream.encode(frame))
        mux.video(stream.encode(None))
        mux.finish()
    return audio_text


def _audio(
    source: av.container.InputContainer,
    audio_in: av.audio.stream.AudioStream,
    output: av.container.OutputContainer,
    muxer: str,
    end: Fraction,
    notes: list[str],
) -> tuple[av.audio.stream.AudioStream, Iterator[tuple[Fraction, av.Packet]], str]:
    # The audio stream and its timed packets: copied when the container holds the codec, else
    # re-encoded (AAC for MP4, Opus for WebM); a text for the report says which.
    name = audio_in.codec_context.name
    holds, fallback = _AUDIO[muxer]
    if name in holds:
        audio_out = output.add_stream_from_template(audio_in)
        return audio_out, timed_packets(source.demux(audio_in), end), f"copied {name}"
    # Re-encode: WebM takes only Opus/Vorbis; MP4 players expect AAC.
    rate = 48000 if fallback == "libopus" else (audio_in.codec_context.sample_rate or 48000)
    encoder = output.add_stream(fallback, rate=rate)
    if not isinstance(encoder, av.audio.stream.AudioStream):
        raise VidattackError(f"{fallback} is not an audio encoder")
    layout = audio_in.codec_context.layout.name if audio_in.codec_context.layout else "stereo"
    layout = layout if layout in ("mono", "stereo") else "stereo"
    encoder.layout = layout
    formats = encoder.codec_context.codec.audio_formats or []
    encoder_format = formats[0].name if formats else "fltp"
    encoder.format = encoder_format
    resampler = av.AudioResampler(format=encoder_format, layout=layout, rate=rate)
    encoded: list[av.Packet] = []
    for frame in source.decode(audio_in):
        if frame.time is not None and frame.time >= end:
            break
        frame.pts = None  # let the resampler and encoder count samples from 0
        for piece in resampler.resample(frame):
            encoded.extend(encoder.encode(piece))
    for piece in resampler.resample(None):
        encoded.extend(encoder.encode(piece))
    encoded.extend(encoder.encode(None))
    target = "opus" if fallback == "libopus" else fallback
    notes.append(f"{muxer} cannot hold {name} audio: re-encoded to {target}")
    return encoder, timed_packets(encoded, None), f"re-encoded {name} -> {target}"


def mp4_top_level_boxes(path: str | os.PathLike[str]) -> list[str]:
    """The types of an MP4/MOV file's top-level boxes in file order (`['ftyp', 'moov', 'mdat']` for
    a fast-start file). Reads only the 8- or 16-byte box headers."""
    boxes: list[str] = []
    with open(path, "rb") as f:
        size_total = os.fstat(f.fileno()).st_size
        pos = 0
        while pos + 8 <= size_total:
            f.seek(pos)
            header = f.read(8)
            size = int.from_bytes(header[:4], "big")
            kind = header[4:8].decode("latin-1")
            if size == 1:  # 64-bit size follows
                size = int.from_bytes(f.read(8), "big")
            elif size == 0:  # box runs to the end of the file
                size = size_total - pos
            if size < 8:
                break  # not a box structure: stop rather than loop
            boxes.append(kind)
            pos += size
    return boxes
