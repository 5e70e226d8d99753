"""Reading and writing video files: the only module of vidattack that touches codecs and containers.

`load_video` decodes the first video stream of a file into one `(T, H, W, 3)` uint8 RGB tensor, upright,
and keeps what is needed to write it back faithfully: every frame's pts, the time base, the display
rotation and the source path (for the audio). `save_video` writes such a tensor atomically, losslessly
by default, so that an adversarial perturbation of one grey level survives the file.

Facts this module relies on (checked with PyAV 18.1 / FFmpeg 8.1, see tests/test_video.py):

- `libx264rgb` at `qp=0` with `rgb24`, `ffv1` with `bgr0` and `libvpx-vp9` with `lossless=1` and `gbrp`
  give back the written RGB frames bit for bit, at odd sizes too. Which one is used depends on what the
  container can hold (`_LOSSLESS`).
- MP4, MOV, M4V, 3GP, MKV and WebM keep a display matrix written with `VideoStream.set_display_rotation`;
  AVI, MPEG-TS, MPEG-PS, FLV and ASF (.wmv) drop it (`_KEEPS_ROTATION`).
- `VideoFrame.rotation` is the counter-clockwise angle of the display matrix, in [-180, 180].
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.logging
import numpy as np
import torch

from vidattack.errors import BadParameterError, BadVideoError, OutputExistsError, VidattackError
from vidattack.files import atomic_path

__all__ = [
    "VIDEO_EXTENSIONS",
    "Video",
    "decode_frames",
    "is_video_path",
    "load_video",
    "save_video",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}
)

# The FFmpeg muxer for each extension; passed explicitly because the temp file's name must not decide.
_MUXERS: dict[str, str] = {
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
class _Encoding:
    codec: str
    pix_fmt: str
    options: dict[str, str]
    even_size: bool = False  # 4:2:0 chroma needs even width and height


_X264RGB = _Encoding("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"})
# ffv1 rather than libx264rgb in AVI and ASF: those muxers mishandle B-frame timestamps (frames came
# back shifted by one in testing), and ffv1 is intra-only.
_FFV1 = _Encoding("ffv1", "bgr0", {})
_VP9_LOSSLESS = _Encoding("libvpx-vp9", "gbrp", {"lossless": "1", "deadline": "realtime", "cpu-used": "8"})
_LOSSLESS: dict[str, _Encoding] = {ext: _X264RGB for ext in _MUXERS} | {
    ".avi": _FFV1,
    ".wmv": _FFV1,
    ".webm": _VP9_LOSSLESS,
}

# "veryfast": delivery copies (heatmaps) are for looking at; medium took minutes on a long 1080p video
_X264_DELIVERY = _Encoding("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, even_size=True)
# H.264 in AVI and ASF came back shifted by one frame even without B-frames; MPEG-4 Part 2 (the
# classic AVI codec) at fixed quantizer 2 (global_quality = 2 * FF_QP2LAMBDA) keeps its timestamps.
_MPEG4_DELIVERY = _Encoding("mpeg4", "yuv420p", {"flags": "+qscale", "global_quality": "236"}, even_size=True)
_DELIVERY: dict[str, _Encoding] = {ext: _X264_DELIVERY for ext in _MUXERS} | {
    ".avi": _MPEG4_DELIVERY,
    ".wmv": _MPEG4_DELIVERY,
    ".webm": _Encoding("libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "row-mt": "1"}, even_size=True),
}

_KEEPS_ROTATION: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".3gp", ".mkv", ".webm"})

# AVI is frame-based: a fine time base makes its muxer write an empty chunk per unused tick, and the
# frame count and timestamps read back come out wrong. It gets one tick per frame instead. Its audio
# has no timestamps (position is implied by the samples), so audio before time 0 (AAC priming) is
# dropped rather than let it shift the video.
_CONSTANT_RATE: frozenset[str] = frozenset({".avi"})

_CODEC_CHOICES = ("lossless", "delivery")


@dataclass
class Video:
    """A decoded video: upright RGB frames plus what is needed to write them back with the same timing.

    `frames` is `(T, H, W, 3)` uint8 RGB with the source's display rotation already applied (so a model
    sees the picture upright); `rotation` records that rotation, counter-clockwise in degrees, as PyAV's
    `VideoFrame.rotation` reports it (a phone held upright usually gives 270). `pts` are the frames'
    presentation timestamps in `time_base` units, in display order, strictly increasing. `notes` are
    human-readable facts about the decoding and encoding (the report prints them).
    """

    frames: torch.Tensor
    pts: list[int]
    time_base: Fraction
    rate: Fraction | None
    path: pathlib.Path | None = None
    rotation: int = 0
    source_codec: str = ""
    source_pix_fmt: str = ""
    bit_depth: int = 8
    has_audio: bool = False
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_frames(self.frames)
        if len(self.pts) != self.frames.shape[0]:
            raise BadParameterError(
                f"expected one pts per frame ({self.frames.shape[0]}), got {len(self.pts)} pts"
            )
        if self.rotation not in (0, 90, 180, 270):
            raise BadParameterError(f"expected rotation 0, 90, 180 or 270, got {self.rotation}")

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        """Frame height in pixels (upright)."""
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        """Frame width in pixels (upright)."""
        return int(self.frames.shape[2])

    @property
    def fps(self) -> float:
        """Frames per second: the stream's average rate, else measured from the pts, else 25.0."""
        if self.rate:
            return float(self.rate)
        span = (self.pts[-1] - self.pts[0]) * self.time_base
        if self.num_frames > 1 and span > 0:
            return float((self.num_frames - 1) / span)
        # A single frame of unknown rate: FFmpeg's own default.
        return 25.0

    def with_frames(self, frames: torch.Tensor) -> Video:
        """Return a copy with new `(T, H, W, 3)` uint8 frames (same T; H and W may differ) and the same
        metadata. The notes list is shared, so what `save_video` notes about the copy (audio left out,
        rotation baked in...) also shows in this video's report."""
        _check_frames(frames)
        if frames.shape[0] != self.num_frames:
            raise BadParameterError(
                f"expected {self.num_frames} frames, got {frames.shape[0]} (shape {tuple(frames.shape)})"
            )
        return dataclasses.replace(self, frames=frames)


def _check_frames(frames: object) -> None:
    if not isinstance(frames, torch.Tensor):
        raise BadParameterError(f"expected frames as a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise BadParameterError(f"expected uint8 frames in 0..255, got {frames.dtype} (quantize first)")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise BadParameterError(f"expected frames of shape (T>0, H, W, 3), got {tuple(frames.shape)}")


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True when the file name has one of `VIDEO_EXTENSIONS` (any case); the file is not opened."""
    return pathlib.Path(path).suffix.lower() in VIDEO_EXTENSIONS


def decode_frames(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode a video file to upright `(T, H, W, 3)` uint8 RGB frames (`load_video(path).frames`)."""
    return load_video(path).frames


@contextlib.contextmanager
def _ffmpeg_logging(verbose: bool) -> Iterator[None]:
    # FFmpeg's log is off by default; at --verbose route it to Python logging ("libav.*") so the real
    # reason behind a terse error ("moov atom not found"...) reaches the user, then put it back.
    if not verbose:
        yield
        return
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        yield
    finally:
        av.logging.set_level(previous)


def _reason(error: BaseException) -> str:
    # av.FFmpegError's str() repeats the errno and the file name; its strerror is the useful part.
    strerror = getattr(error, "strerror", None)
    return str(strerror) if strerror else (str(error) or type(error).__name__)


def load_video(path: str | os.PathLike[str], *, verbose: bool = False) -> Video:
    """Decode the first video stream of `path` into a `Video` with upright uint8 RGB frames.

    Every frame is kept with its pts (missing ones are extrapolated, non-increasing ones bumped, with a
    note), so variable frame rate survives a round trip. 10-bit and 4:4:4 sources are converted to 8-bit
    RGB; display rotation is applied to the frames and recorded in `Video.rotation`. A file that breaks
    off after at least one frame decodes is kept, with a "truncated" note.

    Raises `BadVideoError` with a one-line reason when the file is missing, a directory, empty, not a
    video, an image, has no video stream, or yields no frame. `verbose=True` turns FFmpeg's own log on
    (Python logger "libav") for the duration of the call.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise BadVideoError(f"no such file: {p}")
    if p.is_dir():
        raise BadVideoError(f"{p} is a directory, not a video file")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise BadVideoError(f"cannot read {p}: {_reason(e)}") from e
    if size == 0:
        raise BadVideoError(f"{p} is empty (0 bytes)")
    with _ffmpeg_logging(verbose):
        try:
            container = av.open(str(p), mode="r", metadata_errors="replace")
        except (av.FFmpegError, OSError, ValueError) as e:
            raise BadVideoError(f"{p} is not a readable video: {_reason(e)}") from e
        try:
            with container:
                return _decode(container, p)
        except (av.FFmpegError, OSError, ValueError, RuntimeError) as e:
            # Failures past the frame loop (stream setup, an odd container) end up here.
            raise BadVideoError(f"{p} could not be decoded: {_reason(e)}") from e


def _decode(container: av.container.InputContainer, p: pathlib.Path) -> Video:
    fmt_name = container.format.name
    if fmt_name == "tty" or fmt_name == "image2" or fmt_name.endswith("_pipe"):
        # FFmpeg happily "decodes" text files (tty) and still images; neither is a video to attack.
        kind = "a text file" if fmt_name == "tty" else "a still image"
        raise BadVideoError(f"{p} is {kind}, not a video")
    notes: list[str] = []
    candidates = [
        s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
    ]
    if not candidates:
        raise BadVideoError(f"{p} has no video stream")
    stream = candidates[0]
    if len(candidates) > 1:
        notes.append(f"{len(candidates)} video streams: used the first (stream #{stream.index})")
    if stream.codec_context is None:
        raise BadVideoError(f"{p}: this FFmpeg build has no decoder for its video codec")
    stream.thread_type = "AUTO"
    time_base = stream.time_base or Fraction(1, 90000)
    rate = stream.average_rate or None

    arrays: list[np.ndarray] = []
    raw_pts: list[int | None] = []
    rotation_ccw = 0
    first: av.VideoFrame | None = None
    size: tuple[int, int] = (0, 0)
    bad_packets = 0
    packet_error: BaseException | None = None
    read_error: BaseException | None = None
    rescaled = 0

    def take(frame: av.VideoFrame) -> None:
        nonlocal first, size, rotation_ccw, rescaled
        if first is None:
            first = frame
            size = (frame.width, frame.height)
            rotation_ccw = frame.rotation
        if (frame.width, frame.height) != size:
            # Resolution changes mid-stream (allowed in H.264, seen in screen recordings): one tensor
            # needs one size, so later frames are scaled to the first frame's.
            rescaled += 1
        # np.array copies: to_ndarray may return a non-contiguous view into the frame's buffer.
        arrays.append(np.array(frame.to_ndarray(format="rgb24", width=size[0], height=size[1])))
        raw_pts.append(frame.pts if frame.pts is not None else frame.dts)

    demuxer = container.demux(stream)
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as e:
            read_error = e
            break
        try:
            for frame in stream.decode(packet):
                take(frame)
        except av.FFmpegError as e:
            # A corrupt packet: skip it like a player would and keep the rest of the video.
            bad_packets += 1
            packet_error = e
    if read_error is not None:
        # The demuxer stopped early, so the decoder still holds delayed frames: drain it.
        with contextlib.suppress(av.FFmpegError):
            for frame in stream.decode(None):
                take(frame)

    if not arrays:
        error = read_error or packet_error
        reason = f": {_reason(error)}" if error is not None else ""
        raise BadVideoError(f"{p} has a video stream but no frame could be decoded{reason}")
    if first is None:  # unreachable: arrays is not empty; keeps the type checker informed
        raise BadVideoError(f"{p}: internal error, no first frame")

    n = len(arrays)
    if read_error is not None:
        notes.append(f"truncated: decoded {n} frames ({_reason(read_error)})")
    elif stream.frames and n < stream.frames and fmt_name != "avi":
        # (AVI counts the empty chunks that stand for dropped frames, so its count runs high.)
        notes.append(f"truncated? the container declares {stream.frames} frames, decoded {n}")
    elif shortfall := _missing_seconds(stream, raw_pts, rate, time_base):
        # A Matroska file cut short just ends (FFmpeg only logs "File ended prematurely").
        notes.append(f"truncated? decoded {n} frames, about {shortfall:.2f} s short of the declared duration")
    if bad_packets:
        notes.append(f"{bad_packets} corrupt packets skipped ({_reason(packet_error or ValueError())})")
    if rescaled:
        notes.append(f"resolution changed mid-stream: {rescaled} frames scaled to {size[0]}x{size[1]}")

    pts, fixed = _sanitize_pts(raw_pts, rate, time_base)
    if fixed:
        notes.append(f"{fixed} frames had missing or non-increasing timestamps: extrapolated")

    pix_fmt = first.format.name
    bit_depth = _bit_depth(pix_fmt)
    if bit_depth > 8:
        notes.append(f"{bit_depth}-bit source ({pix_fmt}) decoded to 8-bit")
    elif pix_fmt.startswith(("yuv444", "yuvj444")):
        notes.append(f"4:4:4 source ({pix_fmt}) decoded to 8-bit RGB")
    if _has_alpha(pix_fmt):
        notes.append(f"alpha channel of {pix_fmt} dropped")

    rotation = round(rotation_ccw / 90) * 90 % 360
    if rotation_ccw % 90:
        notes.append(f"display rotation {rotation_ccw} degrees rounded to {rotation}")
    if rotation:
        notes.append(f"display rotation {rotation} degrees applied: frames are upright")
    frames = _stack(arrays, rotation)

    return Video(
        frames=frames,
        pts=pts,
        time_base=time_base,
        rate=rate,
        path=p,
        rotation=rotation,
        source_codec=stream.codec_context.name,
        source_pix_fmt=pix_fmt,
        bit_depth=bit_depth,
        has_audio=bool(container.streams.audio),
        notes=notes,
    )


def _missing_seconds(
    stream: av.video.stream.VideoStream, raw_pts: list[int | None], rate: Fraction | None, time_base: Fraction
) -> float:
    # Seconds of video the stream header declares beyond the last decoded frame, when that is more
    # than a rounding slack of two frames; else 0.
    known = [p for p in raw_pts if p is not None]
    if not stream.duration or not known:
        return 0.0
    frame = 1 / rate if rate else Fraction(1, 25)
    start = stream.start_time if stream.start_time is not None else known[0]
    declared_end = (start + stream.duration) * time_base
    decoded_end = max(known) * time_base + frame
    missing = declared_end - decoded_end
    return float(missing) if missing > 2 * frame else 0.0


def _stack(arrays: list[np.ndarray], rotation: int) -> torch.Tensor:
    # Fill one preallocated tensor, releasing each frame as it is copied, so peak memory stays near one
    # copy of the video (300 frames of 1080p are 1.9 GB).
    k = rotation // 90
    h, w = arrays[0].shape[:2]
    if k % 2:
        h, w = w, h
    frames = torch.empty((len(arrays), h, w, 3), dtype=torch.uint8)
    for i in range(len(arrays)):
        frame = torch.from_numpy(arrays[i])
        arrays[i] = np.empty(0, dtype=np.uint8)
        # rot90 from H towards W turns the picture counter-clockwise, the sense of `rotation`.
        frames[i] = torch.rot90(frame, k, dims=(0, 1)) if k else frame
    return frames


def _sanitize_pts(raw: list[int | None], rate: Fraction | None, time_base: Fraction) -> tuple[list[int], int]:
    # Encoders and muxers need strictly increasing pts; broken files give None or repeats. Fill those
    # from the last step seen (or the nominal frame duration) and count them for a note.
    nominal = max(1, round(1 / (rate * time_base))) if rate else 1
    out: list[int] = []
    fixed = 0
    step = nominal
    for value in raw:
        if not out:
            if value is None:
                fixed += 1
                value = 0
            out.append(value)
            continue
        if value is None or value <= out[-1]:
            fixed += 1
            value = out[-1] + step
        else:
            step = value - out[-1]
        out.append(value)
    return out, fixed


def _bit_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.FFmpegError):
        return 8


def _has_alpha(pix_fmt: str) -> bool:
    try:
        return any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.FFmpegError):
        return False


def save_video(
    video: Video,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    codec: str = "lossless",
    copy_audio: bool = True,
) -> pathlib.Path:
    """Write `video.frames` to `path` with the source's timing, atomically; return the path written.

    `codec="lossless"` (default) stores the RGB frames exactly, so decoding the file gives back
    `video.frames` bit for bit: `libx264rgb` qp 0 in MP4/MOV/M4V/3GP/MKV/TS/FLV/MPEG, `ffv1` in AVI and
    WMV, lossless VP9 in WebM. Many browsers cannot play RGB H.264; `codec="delivery"` writes H.264
    yuv420p crf 18 for players instead (VP9 in WebM, MPEG-4 Part 2 in AVI/WMV), padding odd sizes by
    one replicated edge pixel (noted). That encode destroys small perturbations.

    Timing: every frame keeps its pts in the source's time base (Matroska, FLV and ASF round them to
    1 ms), so variable frame rate survives. Some muxers shift all streams by a constant: MPEG-PS starts
    at 0.5 s, and Matroska/TS/FLV/ASF move everything later when copied AAC audio starts before 0
    (encoder priming). AVI is constant-rate: frames go on a 1/rate grid (noted if the source was VFR)
    and audio before 0 is dropped. Rotation: in MP4/MOV/M4V/3GP/MKV/WebM the frames are stored turned
    back to the source's orientation and the display matrix is written again, so players and
    `load_video` show them upright exactly as before; the other containers cannot carry the matrix,
    so upright frames are written without it and a note is added to `video.notes`. Audio: with
    `copy_audio`, the first audio stream of `video.path` is copied packet for packet (no re-encode) up
    to the end of the video; if the container refuses that codec (AAC in WebM or MPEG-PS), the video
    is written without audio and a note says so.

    The file is encoded to a hidden temp file beside `path` and renamed over it only when complete;
    on any failure the temp file is removed. Raises `OutputExistsError` if `path` exists and not
    `overwrite`, `VidattackError` if `path` is the input video itself or cannot be written,
    `BadParameterError` for an unknown extension or codec.
    """
    out = pathlib.Path(path)
    ext = out.suffix.lower()
    if ext not in _MUXERS:
        raise BadParameterError(
            f"expected an output file ending in one of {', '.join(sorted(_MUXERS))}, got {out.name!r}"
        )
    if codec not in _CODEC_CHOICES:
        raise BadParameterError(f"expected codec 'lossless' or 'delivery', got {codec!r}")
    _check_frames(video.frames)
    if len(video.pts) != video.num_frames:
        raise BadParameterError(f"expected one pts per frame ({video.num_frames}), got {len(video.pts)}")
    if any(b <= a for a, b in itertools.pairwise(video.pts)):
        raise BadParameterError("expected strictly increasing pts")
    if video.path is not None and _same_file(out, video.path):
        raise VidattackError(f"refusing to overwrite the input video {out}")
    if out.is_dir():
        raise VidattackError(f"{out} is a directory")
    if not out.parent.is_dir():
        raise VidattackError(f"output folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite)")

    encoding = (_LOSSLESS if codec == "lossless" else _DELIVERY)[ext]
    rotation = video.rotation if ext in _KEEPS_ROTATION else 0
    if video.rotation and not rotation:
        _note(video, f"{ext} cannot store display rotation: wrote upright frames without rotation metadata")
    pad_h = video.height % 2 if encoding.even_size else 0
    pad_w = video.width % 2 if encoding.even_size else 0
    if pad_h or pad_w:
        _note(
            video,
            f"{codec} encode padded {video.width}x{video.height} to "
            f"{video.width + pad_w}x{video.height + pad_h} (edge pixels repeated)",
        )

    timing = (list(video.pts), video.time_base)
    if ext in _CONSTANT_RATE:
        timing, regular = _constant_rate_timing(video)
        if not regular:
            fps = float(1 / timing[1])
            _note(video, f"{ext} is constant-rate: variable frame times rounded to {fps:g} fps")
    audio = video.path if copy_audio and video.path is not None and video.has_audio else None
    try:
        # the temp file is removed on any failure and renamed over `out` only when complete
        with atomic_path(out) as tmp:
            log.debug("writing %s with %s %s via %s", out, encoding.codec, encoding.pix_fmt, tmp.name)
            try:
                _encode(video, tmp, _MUXERS[ext], encoding, rotation, (pad_h, pad_w), timing, audio)
            except _AudioError as e:
                # The container refused the audio stream: the video matters more, so write it alone.
                _note(video, f"audio not copied: {e}")
                tmp.unlink(missing_ok=True)
                _encode(video, tmp, _MUXERS[ext], encoding, rotation, (pad_h, pad_w), timing, None)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VidattackError(f"could not write {out}: {_reason(e)}") from e
    return out


def _note(video: Video, text: str) -> None:
    # Saving one Video twice (lossless, then delivery) must not repeat its notes in the report.
    if text not in video.notes:
        video.notes.append(text)


def _nominal_rate(video: Video) -> Fraction:
    return video.rate or Fraction(video.fps).limit_denominator(1001)


def _constant_rate_timing(video: Video) -> tuple[tuple[list[int], Fraction], bool]:
    # Put each frame on the nearest tick of a 1/rate grid, keeping them in order; `regular` says
    # whether that was exact (constant frame rate source).
    rate = _nominal_rate(video)
    pts: list[int] = []
    for p in video.pts:
        tick = round(p * video.time_base * rate)
        pts.append(max(tick, pts[-1] + 1) if pts else tick)
    regular = all(b - a == 1 for a, b in itertools.pairwise(pts))
    return (pts, 1 / rate), regular


class _AudioError(Exception):
    """The source audio cannot go into this container (raised before or while writing the header)."""


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _encode(
    video: Video,
    target: pathlib.Path,
    muxer: str,
    encoding: _Encoding,
    rotation: int,
    pad: tuple[int, int],
    timing: tuple[list[int], Fraction],
    audio_source: pathlib.Path | None,
) -> None:
    pts, time_base = timing
    rate = _nominal_rate(video)
    k = rotation // 90
    height, width = video.height + pad[0], video.width + pad[1]
    if k % 2:  # stored sideways
        height, width = width, height
    end_time = pts[-1] * time_base + 1 / rate

    with contextlib.ExitStack() as stack:
        output = stack.enter_context(av.open(str(target), mode="w", format=muxer))
        stream = output.add_stream(encoding.codec, rate=rate, options=dict(encoding.options))
        if not isinstance(stream, av.video.stream.VideoStream):
            raise VidattackError(f"{encoding.codec} is not a video encoder")
        stream.width = width
        stream.height = height
        stream.pix_fmt = encoding.pix_fmt
        # Encode in the source's own time base so each pts is written unchanged (no rounding to 1/rate).
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)

        audio_out: av.audio.stream.AudioStream | None = None
        audio_packets: Iterator[tuple[Fraction, av.Packet]] = iter(())
        if audio_source is not None:
            try:
                source = stack.enter_context(av.open(str(audio_source), mode="r", metadata_errors="replace"))
            except (av.FFmpegError, OSError) as e:
                raise _AudioError(f"cannot reopen {audio_source}: {_reason(e)}") from e
            if source.streams.audio:
                audio_in = source.streams.audio[0]
                try:
                    audio_out = output.add_stream_from_template(audio_in)
                except ValueError as e:
                    raise _AudioError(f"{muxer} cannot hold {audio_in.codec_context.name} audio") from e
                audio_packets = _timed_packets(source.demux(audio_in), end_time, skip_negative=muxer == "avi")
        pending: tuple[Fraction, av.Packet] | None = None

        def mux_audio_until(limit: Fraction | None) -> None:
            # Interleave by time: write the audio packets that start before `limit` (seconds).
            nonlocal pending
            if audio_out is None:
                return
            while True:
                if pending is None:
                    pending = next(audio_packets, None)
                    if pending is None:
                        return
                start, packet = pending
                if limit is not None and start > limit:
                    return
                packet.stream = audio_out
                try:
                    output.mux(packet)
                except (av.FFmpegError, ValueError) as e:
                    raise _AudioError(f"{muxer} refused the {audio_out.codec_context.name} audio") from e
                pending = None

        header_written = False

        def mux_video(packets: list[av.Packet]) -> None:
            nonlocal header_written
            for packet in packets:
                if packet.dts is not None and packet.time_base is not None:
                    mux_audio_until(packet.dts * packet.time_base)
                try:
                    output.mux(packet)
                except (av.FFmpegError, ValueError) as e:
                    # The header goes out with the first packet; if it fails while an audio stream
                    # is in, blame the audio once: the caller retries without it.
                    if audio_out is not None and not header_written:
                        raise _AudioError(_reason(e)) from e
                    raise
                header_written = True

        for i in range(video.num_frames):
            # One frame at a time from the tensor (which may live on a GPU): no copy of the whole video.
            array = video.frames[i].cpu().numpy()
            if pad != (0, 0):
                array = np.pad(array, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
            if k:
                array = np.rot90(array, -k)  # back to the source's stored orientation
            av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            av_frame.pts = pts[i]
            av_frame.time_base = time_base
            mux_video(stream.encode(av_frame))
        mux_video(stream.encode(None))
        mux_audio_until(None)


def _timed_packets(
    packets: Iterator[av.Packet], end_time: Fraction, skip_negative: bool
) -> Iterator[tuple[Fraction, av.Packet]]:
    # Demuxers end with an empty flush packet and may give packets without dts: neither can be muxed.
    for packet in packets:
        if packet.dts is None or packet.size == 0 or packet.time_base is None:
            continue
        start = packet.dts * packet.time_base
        if start < 0 and skip_negative:
            continue
        if start >= end_time:
            return  # audio past the end of the (possibly truncated) video is left out
        yield start, packet
