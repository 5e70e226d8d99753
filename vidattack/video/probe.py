"""`probe`: what a video file declares (size, frame count, pixel format, rate, rotation, audio), read
from the container without decoding the video, so memory can be budgeted before any frame is held."""

from __future__ import annotations

import contextlib
from fractions import Fraction

import av

from vidattack.errors import BadVideoError
from vidattack.video.formats import bit_depth
from vidattack.video.info import VideoInfo
from vidattack.video.limits import MAX_FRAMES
from vidattack.video.paths import (
    PathLike,
    as_path,
    check_input_file,
    display_path,
    ffmpeg_logging,
    open_input,
    reason,
)

# A first frame that has not come out of the decoder after this many packets is not waited for (its
# rotation is then taken as 0): it bounds the time a damaged stream can take to probe.
_FIRST_FRAME_PACKETS = 64


def select_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    """The first real video stream of an opened file, or `BadVideoError` saying why there is none.

    Cover art (an "attached picture" stream) is not a video; FFmpeg also "opens" text files (tty) and
    still images, neither of which is a video to attack.
    """
    shown = display_path(path)
    fmt_name = container.format.name
    if fmt_name == "tty" or fmt_name == "image2" or fmt_name.endswith("_pipe"):
        kind = "a text file" if fmt_name == "tty" else "a still image"
        raise BadVideoError(f"{shown} is {kind}, not a video")
    candidates = video_streams(container)
    if not candidates:
        audio = " (audio only)" if container.streams.audio else ""
        raise BadVideoError(f"{shown} has no video stream{audio}")
    stream = candidates[0]
    if stream.codec_context is None:
        raise BadVideoError(f"{shown}: this FFmpeg build has no decoder for its video codec")
    return stream


def video_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The container's video streams that are not cover art."""
    return [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]


def probe(path: PathLike, *, verbose: bool = False) -> VideoInfo:
    """Read what `path` declares about its first video stream, holding no more than one decoded frame.

    The frame count is the container's own (`nb_frames`) when it has one; otherwise the video packets
    are counted by demuxing the file without decoding it (a read of the file, exact for nearly every
    codec; the container's duration x rate is off by one often enough that a plan made from it would
    not match the decode), and duration x rate is used only when no packet can be read. The first frame
    is decoded (the decoder's own probing in `av.open` already did so) because PyAV exposes the display
    rotation on frames only.

    Raises `BadVideoError` with one line naming the path once for a missing file, a folder, a FIFO or
    device, a symlink loop, an empty or unreadable file, something FFmpeg cannot open, a text file or
    still image, and a file without a video stream. `verbose=True` turns FFmpeg's log on meanwhile.
    """
    size = check_input_file(path)
    with ffmpeg_logging(verbose):
        container = open_input(path)
        try:
            with container:
                return _probe(container, path, size)
        except (av.FFmpegError, OSError, ValueError, RuntimeError, MemoryError) as e:
            raise BadVideoError(f"{display_path(path)} could not be read: {reason(e)}") from None


def _probe(container: av.container.InputContainer, path: PathLike, size: int) -> VideoInfo:
    stream = select_stream(container, path)
    ctx = stream.codec_context
    time_base = stream.time_base or Fraction(1, 90000)
    rate = stream.average_rate or None
    duration = _duration_seconds(container, stream, time_base)
    declared = int(stream.frames or 0)
    first, packets = _scan(container, stream, count=declared <= 0)
    if declared > 0:
        frames, source = declared, "container"
    elif packets > 0:
        frames, source = packets, "packets"
    else:
        frames, source = round(duration * float(rate)) if duration and rate else 0, "duration"
    if frames > MAX_FRAMES:
        raise BadVideoError(
            f"{display_path(path)} declares {frames} frames, more than the {MAX_FRAMES} vidattack reads"
        )
    stored_w, stored_h = (first.width, first.height) if first else (ctx.width, ctx.height)
    rotation = round(first.rotation / 90) * 90 % 360 if first else 0
    width, height = (stored_h, stored_w) if rotation % 180 else (stored_w, stored_h)
    pix_fmt = first.format.name if first else (ctx.pix_fmt or "")
    fps = float(rate) if rate else (frames / duration if duration and frames > 1 else 25.0)
    return VideoInfo(
        path=as_path(path),
        size_bytes=size,
        container=container.format.name,
        codec=ctx.name,
        width=width,
        height=height,
        stored_width=stored_w,
        stored_height=stored_h,
        frames=frames,
        frames_from=source,
        pix_fmt=pix_fmt,
        bit_depth=bit_depth(pix_fmt) if pix_fmt else 8,
        rate=rate,
        fps=fps,
        time_base=time_base,
        duration=duration,
        rotation=rotation,
        has_audio=bool(container.streams.audio),
        video_streams=len(video_streams(container)),
    )


def _duration_seconds(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, time_base: Fraction
) -> float | None:
    if stream.duration:
        return float(stream.duration * time_base)
    if container.duration:
        return container.duration / av.time_base  # microseconds
    return None


def _scan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, *, count: bool
) -> tuple[av.VideoFrame | None, int]:
    # One demuxing pass: decode packets until the first frame comes out (for its rotation and true
    # size), and, if `count`, count the non-empty video packets (one per frame for nearly every codec;
    # AVI's empty chunks stand for dropped frames). Stops past MAX_FRAMES: the caller refuses then.
    first: av.VideoFrame | None = None
    packets = 0
    seen = 0
    with contextlib.suppress(av.FFmpegError, OSError):
        for packet in container.demux(stream):
            seen += 1
            if first is None and seen <= _FIRST_FRAME_PACKETS:
                with contextlib.suppress(av.FFmpegError):
                    first = next(iter(stream.decode(packet)), None)
            if packet.size:
                packets += 1
            if (not count and (first is not None or seen > _FIRST_FRAME_PACKETS)) or packets > MAX_FRAMES:
                break
    if first is None:
        # Reordering decoders hold the first frames back until flushed (a 1-frame file, say).
        with contextlib.suppress(av.FFmpegError, OSError):
            first = next(iter(stream.decode(None)), None)
    return first, packets
