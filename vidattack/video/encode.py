"""Streaming encode: write frames one at a time with a source's timing, rotation and audio, atomically.

`save_video` writes a `Video` held in memory; `rewrite` re-decodes the source and substitutes the
adversarial frames at their indices, and `map_frames` writes a function of two sources frame by frame
(the heatmap video), so neither ever holds a whole video. All three go through `_write`, so a file
written by `rewrite` is byte for byte the one `save_video(video.with_frames(adv))` writes.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pathlib
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction

import av
import numpy as np
import torch

from vidattack import cancel
from vidattack.errors import BadParameterError, OutputExistsError, VidattackError
from vidattack.files import atomic_path
from vidattack.video.decode import Source, decode_sampled, iter_frames
from vidattack.video.formats import (
    CODEC_CHOICES,
    CONSTANT_RATE,
    DELIVERY,
    KEEPS_ROTATION,
    LOSSLESS,
    MUXERS,
    Encoding,
)
from vidattack.video.mux import (
    AudioRefused,
    Muxer,
    add_video_stream,
    nominal_rate,
    open_audio_source,
    timed_packets,
)
from vidattack.video.paths import PathLike, display_path, reason
from vidattack.video.types import SampledFrames, Timing, Video, check_frames

log = logging.getLogger(__name__)

#: Opens an iterator over the upright `(H, W, 3)` uint8 frames to write; called again if the first
#: attempt must be redone without audio.
FrameFactory = Callable[[], contextlib.AbstractContextManager[Iterator[torch.Tensor]]]


def save_video(
    video: Video,
    path: PathLike,
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
    check_frames(video.frames)
    if len(video.pts) != video.num_frames:
        raise BadParameterError(f"expected one pts per frame ({video.num_frames}), got {len(video.pts)}")
    return _write(
        video,
        path,
        lambda: contextlib.nullcontext(iter(video.frames)),
        overwrite=overwrite,
        codec=codec,
        copy_audio=copy_audio,
    )


def rewrite(
    source: Source,
    path: PathLike,
    replaced: Mapping[int, torch.Tensor],
    *,
    codec: str = "lossless",
    overwrite: bool = False,
    copy_audio: bool = True,
    verbose: bool = False,
) -> pathlib.Path:
    """Write `source` to `path` with the frames at `replaced`'s indices swapped for its `(H, W, 3)`
    uint8 tensors (the adversarial frames), streaming: the source is decoded again frame by frame and
    each frame encoded at once, so memory is a small window whatever the video's length.

    `source` is what `decode_sampled` returned (its timing, rotation and notes are used; its kept
    `all_frames`, if any, spare the decode), a `Video`, or a path (then a first pass reads the timing).
    Everything else is as `save_video`, and the file is byte for byte what
    `save_video(video.with_frames(frames with the replacements))` writes. Returns the path written.
    """
    header = _header(source, verbose)
    size = (_height(header), _width(header))
    for index, frame in replaced.items():
        if not 0 <= index < header.num_frames:
            raise BadParameterError(f"expected frame indices in 0..{header.num_frames - 1}, got {index}")
        if (
            not isinstance(frame, torch.Tensor)
            or frame.dtype != torch.uint8
            or tuple(frame.shape) != (*size, 3)
        ):
            got = tuple(frame.shape) if isinstance(frame, torch.Tensor) else type(frame).__name__
            raise BadParameterError(f"expected a uint8 frame of shape {(*size, 3)} at {index}, got {got}")

    @contextlib.contextmanager
    def frames() -> Iterator[Iterator[torch.Tensor]]:
        with iter_frames(_frames_of(source, header), verbose=verbose) as decoded:
            yield (replaced.get(i, frame) for i, frame in enumerate(decoded))

    return _write(header, path, frames, overwrite=overwrite, codec=codec, copy_audio=copy_audio)


def map_frames(
    clean: Source,
    written: Source,
    fn: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
    path: PathLike,
    *,
    codec: str = "delivery",
    overwrite: bool = False,
    copy_audio: bool = False,
    verbose: bool = False,
) -> pathlib.Path:
    """Write `fn(index, clean_frame, written_frame)` for every frame of two equally long sources, with
    `clean`'s timing and rotation, streaming (both decoded in lockstep, one frame of each at a time).

    Made for the heatmap video: `fn` maps `(H, W, 3)` uint8 pairs to an `(H', W', 3)` uint8 picture
    (the same size for every frame) and is where the colour mapping lives; it may also keep the few
    frames a contact sheet shows. Delivery codec and no audio by default. Returns the path written.
    """
    from vidattack.video.compare import lockstep

    header = _header(clean, verbose)

    @contextlib.contextmanager
    def frames() -> Iterator[Iterator[torch.Tensor]]:
        with (
            iter_frames(_frames_of(clean, header), verbose=verbose) as a,
            iter_frames(written, verbose=verbose) as b,
        ):
            yield (fn(i, x, y) for i, (x, y) in enumerate(lockstep(a, b, _path_of(written))))

    return _write(header, path, frames, overwrite=overwrite, codec=codec, copy_audio=copy_audio)


def _header(source: Source, verbose: bool) -> Video | SampledFrames:
    # Timing, rotation and notes of a source: a decode result as is, else one timing pass over the file.
    if isinstance(source, Video | SampledFrames):
        return source
    return decode_sampled(source, (), verbose=verbose)


def _frames_of(source: Source, header: Video | SampledFrames) -> Source:
    # A path decoded for its timing only: read its frames from the file, not from the empty sample.
    return header if isinstance(source, Video | SampledFrames) else source


def _path_of(source: Source) -> str:
    path = source.path if isinstance(source, Video | SampledFrames) else source
    return display_path(path) if path is not None else "the written frames"


def _height(header: Video | SampledFrames) -> int:
    return header.height


def _width(header: Video | SampledFrames) -> int:
    return header.width


def _write(
    header: Timing,
    path: PathLike,
    frames: FrameFactory,
    *,
    overwrite: bool,
    codec: str,
    copy_audio: bool,
) -> pathlib.Path:
    out = pathlib.Path(os.fsdecode(path))
    ext = out.suffix.lower()
    _check_target(header, out, ext, codec, overwrite)
    encoding = (LOSSLESS if codec == "lossless" else DELIVERY)[ext]
    rotation = header.rotation if ext in KEEPS_ROTATION else 0
    if header.rotation and not rotation:
        _note(header, f"{ext} cannot store display rotation: wrote upright frames without rotation metadata")
    timing = (list(header.pts), header.time_base)
    if ext in CONSTANT_RATE:
        timing, regular = _constant_rate_timing(header)
        if not regular:
            fps = float(1 / timing[1])
            _note(header, f"{ext} is constant-rate: variable frame times rounded to {fps:g} fps")
    audio = header.path if copy_audio and header.path is not None and header.has_audio else None
    job = _Job(header, MUXERS[ext], encoding, codec, rotation, timing)
    try:
        # the temp file is removed on any failure and renamed over `out` only when complete
        with atomic_path(out) as tmp:
            log.debug("writing %s with %s %s via %s", out, encoding.codec, encoding.pix_fmt, tmp.name)
            try:
                with frames() as it:
                    job.encode(it, tmp, audio)
            except AudioRefused as e:
                # The container refused the audio stream: the video matters more, so write it alone.
                _note(header, f"audio not copied: {e}")
                tmp.unlink(missing_ok=True)
                with frames() as it:
                    job.encode(it, tmp, None)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VidattackError(f"could not write {display_path(out)}: {reason(e)}") from e
    return out


def _check_target(header: Timing, out: pathlib.Path, ext: str, codec: str, overwrite: bool) -> None:
    shown = display_path(out)
    if ext not in MUXERS:
        raise BadParameterError(
            f"expected an output file ending in one of {', '.join(sorted(MUXERS))}, got {out.name!r}"
        )
    if codec not in CODEC_CHOICES:
        raise BadParameterError(f"expected codec 'lossless' or 'delivery', got {codec!r}")
    if not header.pts:
        raise BadParameterError("expected at least one frame to write, got none")
    if any(b <= a for a, b in itertools.pairwise(header.pts)):
        raise BadParameterError("expected strictly increasing pts")
    if header.path is not None and _same_file(out, header.path):
        raise VidattackError(f"refusing to overwrite the input video {shown}")
    if out.is_dir():
        raise VidattackError(f"{shown} is a directory")
    if not out.parent.is_dir():
        raise VidattackError(f"output folder {display_path(out.parent)} does not exist")
    if os.path.lexists(out) and not overwrite:  # a dangling symlink is an existing output
        raise OutputExistsError(f"{shown} exists (use --overwrite)")


def _note(header: Timing, text: str) -> None:
    # Saving one Video twice (lossless, then delivery) must not repeat its notes in the report.
    if text not in header.notes:
        header.notes.append(text)


def _constant_rate_timing(header: Timing) -> tuple[tuple[list[int], Fraction], bool]:
    # Put each frame on the nearest tick of a 1/rate grid, keeping them in order; `regular` says
    # whether that was exact (constant frame rate source).
    rate = nominal_rate(header)
    pts: list[int] = []
    for p in header.pts:
        tick = round(p * header.time_base * rate)
        pts.append(max(tick, pts[-1] + 1) if pts else tick)
    regular = all(b - a == 1 for a, b in itertools.pairwise(pts))
    return (pts, 1 / rate), regular


def _same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


class _Job:
    """One encode: the stream settings fixed before the first frame, then frames muxed as they come."""

    def __init__(
        self,
        header: Timing,
        muxer: str,
        encoding: Encoding,
        codec: str,
        rotation: int,
        timing: tuple[list[int], Fraction],
    ) -> None:
        self.header = header
        self.muxer = muxer
        self.encoding = encoding
        self.codec = codec
        self.rotation = rotation
        self.pts, self.time_base = timing
        self.rate = nominal_rate(header)

    def encode(
        self, frames: Iterator[torch.Tensor], target: pathlib.Path, audio_source: pathlib.Path | None
    ) -> None:
        """Encode `frames` (exactly one per pts) to `target`, copying audio from `audio_source`."""
        first = next(frames, None)
        if first is None:
            raise VidattackError(f"expected {len(self.pts)} frames to write, got none")
        check_frames(first[None])
        height, width = int(first.shape[0]), int(first.shape[1])
        pad = self._padding(height, width)
        with contextlib.ExitStack() as stack:
            output = stack.enter_context(av.open(str(target), mode="w", format=self.muxer))
            stream = add_video_stream(
                output,
                self.encoding.codec,
                self.encoding.options,
                rate=self.rate,
                size=(width + pad[1], height + pad[0]),
                pix_fmt=self.encoding.pix_fmt,
                time_base=self.time_base,
                rotation=self.rotation,
            )
            audio = self._audio(stack, output, audio_source) if audio_source is not None else None
            mux = Muxer(output, self.muxer, audio)
            count = 0
            for frame in itertools.chain((first,), frames):
                cancel.check()  # a signal stops the encode (and the heatmap video) at the next frame
                if count >= len(self.pts):
                    raise VidattackError(f"expected {len(self.pts)} frames to write, got more")
                mux.video(stream.encode(self._av_frame(frame, pad, count)))
                count += 1
            if count != len(self.pts):
                raise VidattackError(f"expected {len(self.pts)} frames to write, got {count}")
            mux.video(stream.encode(None))
            mux.finish()

    def _padding(self, height: int, width: int) -> tuple[int, int]:
        pad_h = height % 2 if self.encoding.even_size else 0
        pad_w = width % 2 if self.encoding.even_size else 0
        if pad_h or pad_w:
            _note(
                self.header,
                f"{self.codec} encode padded {width}x{height} to {width + pad_w}x{height + pad_h} (edge pixels repeated)",
            )
        return pad_h, pad_w

    def _audio(
        self, stack: contextlib.ExitStack, output: av.container.OutputContainer, source: pathlib.Path
    ) -> tuple[av.audio.stream.AudioStream, Iterator[tuple[Fraction, av.Packet]]] | None:
        # The source's first audio stream, copied packet for packet up to the end of the video.
        opened = open_audio_source(stack, source)
        if opened is None:
            return None
        container, audio_in = opened
        try:
            audio_out = output.add_stream_from_template(audio_in)
        except ValueError as e:
            raise AudioRefused(f"{self.muxer} cannot hold {audio_in.codec_context.name} audio") from e
        end = self.pts[-1] * self.time_base + 1 / self.rate
        demuxed = container.demux(audio_in)
        return audio_out, timed_packets(demuxed, end, skip_negative=self.muxer == "avi")

    def _av_frame(self, frame: torch.Tensor, pad: tuple[int, int], index: int) -> av.VideoFrame:
        # One frame at a time from the tensor (which may live on a GPU): no copy of the whole video.
        array = frame.cpu().numpy()
        if pad != (0, 0):
            array = np.pad(array, ((0, pad[0]), (0, pad[1]), (0, 0)), mode="edge")
        k = self.rotation // 90
        if k:
            array = np.rot90(array, -k)  # back to the source's stored orientation
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
        av_frame.pts = self.pts[index]
        av_frame.time_base = self.time_base
        return av_frame
