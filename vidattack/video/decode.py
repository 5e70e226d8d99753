"""Streaming decode: one pass over a file's first video stream, frame by frame, keeping only what the
caller asks for (the model's sampled frames), so memory is the sample plus a small window, never the
whole video. `load_video` (every frame in memory) is built on the same reader for small clips and tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import numpy as np
import torch

from vidattack import cancel
from vidattack.errors import BadVideoError
from vidattack.video.formats import bit_depth, has_alpha
from vidattack.video.limits import DEFAULT_MAX_MEMORY, KEEP_ALL_BYTES, MAX_FRAMES, check_budget
from vidattack.video.paths import PathLike, as_path, display_path, ffmpeg_logging, open_input, reason
from vidattack.video.probe import VideoInfo, probe, select_stream, video_streams
from vidattack.video.types import SampledFrames, Video

if TYPE_CHECKING:
    from typing import Self

#: What frames can be read from: a file, or a decode that holds every frame.
Source = PathLike | Video | SampledFrames


class PtsSanitizer:
    """Make timestamps strictly increasing, one frame at a time.

    Encoders and muxers need strictly increasing pts; broken files give None or repeats. Those are
    filled from the last step seen (or the nominal frame duration) and counted in `fixed`.
    """

    def __init__(self, rate: Fraction | None, time_base: Fraction) -> None:
        self.step = max(1, round(1 / (rate * time_base))) if rate else 1
        self.last: int | None = None
        self.fixed = 0

    def __call__(self, value: int | None) -> int:
        if self.last is None:
            if value is None:
                self.fixed += 1
                value = 0
        elif value is None or value <= self.last:
            self.fixed += 1
            value = self.last + self.step
        else:
            self.step = value - self.last
        self.last = value
        return value


def sanitize_pts(
    raw: Sequence[int | None], rate: Fraction | None, time_base: Fraction
) -> tuple[list[int], int]:
    """`PtsSanitizer` over a whole list: the sanitized pts and how many were fixed."""
    fix = PtsSanitizer(rate, time_base)
    return [fix(v) for v in raw], fix.fixed


class FrameReader:
    """Decode the first video stream of a file frame by frame (a context manager).

    Iterating gives `(index, pts, frame)`: the frame's number in display order, its sanitized pts and
    the `av.VideoFrame`, which `rgb()` turns into an upright `(H, W, 3)` uint8 array only when wanted
    (the colour conversion is much of a decode's cost). Corrupt packets are skipped like a player
    would; a read error ends the stream after draining the decoder (a truncated file keeps its frames).
    After iterating, `notes()` gives what `load_video` notes about the decode, `rotation` the display
    rotation applied and `size` the upright (width, height).

    `max_frames` bounds a stream that yields more frames than any video should (`BadVideoError`);
    `on_first_frame(width, height)` is called with the upright size of the first frame before it is
    converted, so a caller can refuse a frame size the container did not declare.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        verbose: bool = False,
        max_frames: int = MAX_FRAMES,
        on_first_frame: Callable[[int, int], None] | None = None,
    ) -> None:
        self.path = as_path(path)
        self._raw_path = path
        self._verbose = verbose
        self._max_frames = max_frames
        self._on_first_frame = on_first_frame
        self._stack = contextlib.ExitStack()
        self.rotation = 0
        self.rotation_ccw = 0
        self.size = (0, 0)
        self.count = 0
        self.pix_fmt = ""
        self._coded_size = (0, 0)
        self._rescaled = 0
        self._bad_packets = 0
        self._packet_error: BaseException | None = None
        self._read_error: BaseException | None = None
        self._first_raw: int | None = None
        self._max_raw: int | None = None

    def __enter__(self) -> Self:
        self._stack.enter_context(ffmpeg_logging(self._verbose))
        try:
            self.container = self._stack.enter_context(open_input(self._raw_path))
            self.stream = select_stream(self.container, self._raw_path)
        except BaseException:
            self._stack.close()
            raise
        self.stream.thread_type = "AUTO"  # about 1.4x faster on 2 cores; indices come from our count
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.rate: Fraction | None = self.stream.average_rate or None
        self._pts = PtsSanitizer(self.rate, self.time_base)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def shown(self) -> str:
        """The path as printed in messages."""
        return display_path(self._raw_path)

    def __iter__(self) -> Iterator[tuple[int, int, av.VideoFrame]]:
        for frame in self._decoded():
            cancel.check()  # a signal stops decode and verify at the next frame, in any thread
            if self.count >= self._max_frames:
                raise BadVideoError(f"{self.shown} yields more than {self._max_frames} frames")
            if self.count == 0:
                self._first(frame)
            raw = frame.pts if frame.pts is not None else frame.dts
            if raw is not None:
                self._first_raw = raw if self._first_raw is None else self._first_raw
                self._max_raw = raw if self._max_raw is None else max(self._max_raw, raw)
            if (frame.width, frame.height) != self._coded_size:
                # Resolution changes mid-stream (allowed in H.264, seen in screen recordings): one
                # tensor needs one size, so later frames are scaled to the first frame's.
                self._rescaled += 1
            yield self.count, self._pts(raw), frame
            self.count += 1

    def _decoded(self) -> Iterator[av.VideoFrame]:
        demuxer = self.container.demux(self.stream)
        while True:
            try:
                packet = next(demuxer)
            except StopIteration:
                return
            except (av.FFmpegError, OSError) as e:
                self._read_error = e
                break
            try:
                frames = self.stream.decode(packet)
            except av.FFmpegError as e:
                # A corrupt packet: skip it like a player would and keep the rest of the video.
                self._bad_packets += 1
                self._packet_error = e
                continue
            yield from frames
        # The demuxer stopped early, so the decoder still holds delayed frames: drain it.
        with contextlib.suppress(av.FFmpegError):
            yield from self.stream.decode(None)

    def _first(self, frame: av.VideoFrame) -> None:
        self._coded_size = (frame.width, frame.height)
        self.pix_fmt = frame.format.name
        self.rotation_ccw = frame.rotation
        self.rotation = round(frame.rotation / 90) * 90 % 360
        w, h = self._coded_size
        self.size = (h, w) if self.rotation % 180 else (w, h)
        if self._on_first_frame is not None:
            self._on_first_frame(*self.size)

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """The frame as upright `(H, W, 3)` uint8 RGB, contiguous and owning its memory."""
        w, h = self._coded_size
        # to_ndarray may return a non-contiguous view into the frame's buffer: always copy.
        array = frame.to_ndarray(format="rgb24", width=w, height=h)
        k = self.rotation // 90
        if k:
            # rot90 from H towards W turns the picture counter-clockwise, the sense of `rotation`.
            array = np.rot90(array, k)
        return np.array(array, order="C")

    def check_not_empty(self) -> None:
        """Raise `BadVideoError` when no frame was decoded (call after iterating)."""
        if self.count == 0:
            error = self._read_error or self._packet_error
            why = f": {reason(error)}" if error is not None else ""
            raise BadVideoError(f"{self.shown} has a video stream but no frame could be decoded{why}")

    def notes(self) -> list[str]:
        """What a report should say about this decode (call after iterating), in `load_video`'s order."""
        notes: list[str] = []
        streams = video_streams(self.container)
        if len(streams) > 1:
            notes.append(f"{len(streams)} video streams: used the first (stream #{self.stream.index})")
        n, stream = self.count, self.stream
        if self._read_error is not None:
            notes.append(f"truncated: decoded {n} frames ({reason(self._read_error)})")
        elif stream.frames and n < stream.frames and self.container.format.name != "avi":
            # (AVI counts the empty chunks that stand for dropped frames, so its count runs high.)
            notes.append(f"truncated? the container declares {stream.frames} frames, decoded {n}")
        elif shortfall := self._missing_seconds():
            # A Matroska file cut short just ends (FFmpeg only logs "File ended prematurely").
            notes.append(
                f"truncated? decoded {n} frames, about {shortfall:.2f} s short of the declared duration"
            )
        if self._bad_packets:
            why = reason(self._packet_error or ValueError())
            notes.append(f"{self._bad_packets} corrupt packets skipped ({why})")
        if self._rescaled:
            w, h = self._coded_size
            notes.append(f"resolution changed mid-stream: {self._rescaled} frames scaled to {w}x{h}")
        if self._pts.fixed:
            notes.append(f"{self._pts.fixed} frames had missing or non-increasing timestamps: extrapolated")
        notes.extend(_format_notes(self.pix_fmt, self.rotation_ccw, self.rotation))
        return notes

    def _missing_seconds(self) -> float:
        # Seconds of video the stream header declares beyond the last decoded frame, when that is more
        # than a rounding slack of two frames; else 0.
        stream = self.stream
        if not stream.duration or self._max_raw is None or self._first_raw is None:
            return 0.0
        frame = 1 / self.rate if self.rate else Fraction(1, 25)
        start = stream.start_time if stream.start_time is not None else self._first_raw
        declared_end = (start + stream.duration) * self.time_base
        decoded_end = self._max_raw * self.time_base + frame
        missing = declared_end - decoded_end
        return float(missing) if missing > 2 * frame else 0.0


def _format_notes(pix_fmt: str, rotation_ccw: int, rotation: int) -> list[str]:
    notes = []
    depth = bit_depth(pix_fmt)
    if depth > 8:
        notes.append(f"{depth}-bit source ({pix_fmt}) decoded to 8-bit")
    elif pix_fmt.startswith(("yuv444", "yuvj444")):
        notes.append(f"4:4:4 source ({pix_fmt}) decoded to 8-bit RGB")
    if has_alpha(pix_fmt):
        notes.append(f"alpha channel of {pix_fmt} dropped")
    if rotation_ccw % 90:
        notes.append(f"display rotation {rotation_ccw} degrees rounded to {rotation}")
    if rotation:
        notes.append(f"display rotation {rotation} degrees applied: frames are upright")
    return notes


def decode_sampled(
    path: PathLike,
    frame_ids: Sequence[int],
    info: VideoInfo | None = None,
    *,
    budget_bytes: int | None = None,
    keep_all_bytes: int = 0,
    verbose: bool = False,
) -> SampledFrames:
    """Decode `path` once, sequentially, keeping only the frames at `frame_ids` (and every frame's pts).

    Memory is the sampled frames `(T', H, W, 3)` uint8 plus the decoder's window, whatever the video's
    length; a stream that yields more frames than it declared costs time, not memory (and is cut at
    `MAX_FRAMES`). Ids past the end of the video are left out of the result's `frame_ids` (compare its
    `num_frames` with what was expected). With `keep_all_bytes`, a video that takes at most that many
    bytes as 8-bit RGB is also kept whole in `all_frames`, so that `rewrite` and `compare` need not
    decode it again.

    `info` is `probe(path)` (probed here when None). With `budget_bytes`, `check_budget` runs before
    decoding and again when the first frame turns out larger than declared. Raises `BadVideoError` (one
    line, the path named once) for anything that is not a decodable video.
    """
    ids = sorted(set(frame_ids))
    if ids and ids[0] < 0:
        raise BadVideoError(f"expected frame ids >= 0, got {ids[0]}")
    if info is None:
        info = probe(path, verbose=verbose)
    if budget_bytes is not None:
        check_budget(info, len(ids), budget_bytes, keep_all_bytes=keep_all_bytes)

    def first_frame(width: int, height: int) -> None:
        if budget_bytes is not None and width * height > info.width * info.height:
            check_budget(_resized(info, width, height), len(ids), budget_bytes, keep_all_bytes=keep_all_bytes)

    wanted = set(ids)
    kept: dict[int, np.ndarray] = {}
    whole = _WholeVideo(info.frames, keep_all_bytes)
    pts: list[int] = []
    with _decoding(path), FrameReader(path, verbose=verbose, on_first_frame=first_frame) as reader:
        for index, p, frame in reader:
            pts.append(p)
            keep_whole = whole.wants(index, reader.size)
            if index in wanted or keep_whole:
                array = reader.rgb(frame)
                if index in wanted:
                    kept[index] = array
                whole.add(index, array)
        reader.check_not_empty()
        return _sampled(reader, kept, pts, whole.result(len(pts)), info)


class _WholeVideo:
    """Every frame in one tensor, allocated once from the expected count, while it fits `limit` bytes.

    Preallocating matters: a list of per-frame arrays stacked at the end peaks at twice the video
    (glibc keeps the freed arrays' memory), 11 GB for 2000 frames of 720p.
    """

    def __init__(self, expected: int, limit: int) -> None:
        self.expected = max(expected, 1)
        self.limit = limit
        self.frames: torch.Tensor | None = None
        self.active = limit > 0

    def wants(self, index: int, size: tuple[int, int]) -> bool:
        if self.active and (index + 1) * size[0] * size[1] * 3 > self.limit:
            self.active = False  # too long to keep: writing and comparing decode it again
            self.frames = None
        return self.active

    def add(self, index: int, array: np.ndarray) -> None:
        if not self.active:
            return
        if self.frames is None:
            rows = max(1, min(self.expected, self.limit // max(array.nbytes, 1)))
            self.frames = torch.empty((rows, *array.shape), dtype=torch.uint8)
        elif index >= self.frames.shape[0]:
            # More frames than expected (the header undercounts): grow, within the limit.
            rows = min(2 * self.frames.shape[0], self.limit // array.nbytes)
            grown = torch.empty((rows, *array.shape), dtype=torch.uint8)
            grown[: self.frames.shape[0]] = self.frames
            self.frames = grown
        self.frames[index] = torch.from_numpy(array)

    def result(self, count: int) -> torch.Tensor | None:
        if not self.active or self.frames is None:
            return None
        return self.frames[:count] if count < self.frames.shape[0] else self.frames


def _sampled(
    reader: FrameReader,
    kept: dict[int, np.ndarray],
    pts: list[int],
    everything: torch.Tensor | None,
    info: VideoInfo,
) -> SampledFrames:
    width, height = reader.size
    found = tuple(sorted(kept))
    frames = torch.empty((len(found), height, width, 3), dtype=torch.uint8)
    for row, index in enumerate(found):
        frames[row] = torch.from_numpy(kept.pop(index))
    return SampledFrames(
        frames=frames,
        frame_ids=found,
        pts=pts,
        time_base=reader.time_base,
        rate=reader.rate,
        height=height,
        width=width,
        path=reader.path,
        rotation=reader.rotation,
        source_codec=reader.stream.codec_context.name,
        source_pix_fmt=reader.pix_fmt,
        bit_depth=bit_depth(reader.pix_fmt),
        has_audio=info.has_audio,
        notes=reader.notes(),
        all_frames=everything,
    )


def _resized(info: VideoInfo, width: int, height: int) -> VideoInfo:
    import dataclasses

    return dataclasses.replace(info, width=width, height=height)


@contextlib.contextmanager
def _decoding(path: PathLike) -> Iterator[None]:
    # Failures past the frame loop (stream setup, an odd container, a decoder out of memory) become one
    # clear line; our own BadVideoErrors pass through unchanged.
    try:
        yield
    except (av.FFmpegError, OSError, ValueError, RuntimeError, MemoryError) as e:
        raise BadVideoError(f"{display_path(path)} could not be decoded: {reason(e)}") from None


def decode_planned(
    path: PathLike,
    plan: Callable[[int], Sequence[int]],
    *,
    budget_bytes: int = DEFAULT_MAX_MEMORY,
    keep_all_bytes: int = KEEP_ALL_BYTES,
    verbose: bool = False,
) -> SampledFrames:
    """The pipeline's decode stage: probe, plan, check the memory budget, decode the sample.

    `plan(num_frames)` gives the frame ids the model samples from a video of that length (for example
    `lambda n: view.plan(n).frame_ids`). It is called with the probed frame count; when the decode finds
    another count (a truncated file, a header that lies) it is called again with the true one and, if
    the ids change, the new ones are taken from the kept whole video or decoded in a second pass, so
    the result is what planning on a full decode would give.
    """
    info = probe(path, verbose=verbose)
    ids = tuple(plan(max(info.frames, 1)))
    sampled = decode_sampled(
        path, ids, info, budget_bytes=budget_bytes, keep_all_bytes=keep_all_bytes, verbose=verbose
    )
    if sampled.num_frames == info.frames and sampled.frame_ids == ids:
        return sampled
    true_ids = tuple(sorted(set(plan(sampled.num_frames))))
    if true_ids == sampled.frame_ids:
        return sampled
    if sampled.all_frames is not None:
        sampled.frames = sampled.all_frames.index_select(0, torch.tensor(true_ids, dtype=torch.long))
        sampled.frame_ids = true_ids
        return sampled
    import dataclasses

    corrected = dataclasses.replace(info, frames=sampled.num_frames)
    return decode_sampled(path, true_ids, corrected, budget_bytes=budget_bytes, verbose=verbose)


def load_video(path: PathLike, *, verbose: bool = False, budget_bytes: int | None = None) -> Video:
    """Decode the first video stream of `path` into a `Video` holding every frame, upright uint8 RGB.

    Every frame is kept with its pts (missing ones are extrapolated, non-increasing ones bumped, with a
    note), so variable frame rate survives a round trip. 10-bit and 4:4:4 sources are converted to 8-bit
    RGB; display rotation is applied to the frames and recorded in `Video.rotation`. A file that breaks
    off after at least one frame decodes is kept, with a "truncated" note.

    The whole video is in memory (a 10-second 1080p clip is 1.9 GB): the pipeline uses
    `decode_sampled` instead. With `budget_bytes`, a video whose declared frames would not fit as 8-bit
    RGB is refused before decoding. Raises `BadVideoError` with a one-line reason when the file is
    missing, a folder, not a regular file, empty, not a video, an image, has no video stream, or yields
    no frame. `verbose=True` turns FFmpeg's own log on (Python logger "libav") for the call.
    """
    info = probe(path, verbose=verbose)
    if budget_bytes is not None:
        need = info.frames * info.width * info.height * 3
        if need > budget_bytes:
            from vidattack.video.limits import format_bytes

            raise BadVideoError(
                f"{display_path(path)} needs about {format_bytes(need)} to hold its {info.frames} frames of "
                f"{info.width}x{info.height} (budget {format_bytes(budget_bytes)})"
            )
    sampled = decode_sampled(path, (), info, keep_all_bytes=2**62, verbose=verbose)
    return sampled.to_video()


def decode_frames(path: PathLike) -> torch.Tensor:
    """Decode a video file to upright `(T, H, W, 3)` uint8 RGB frames (`load_video(path).frames`)."""
    return load_video(path).frames


@contextlib.contextmanager
def iter_frames(source: Source, *, verbose: bool = False) -> Iterator[Iterator[torch.Tensor]]:
    """A context giving an iterator over a source's upright `(H, W, 3)` uint8 frames, in order.

    A `Video` (or a `SampledFrames` that kept `all_frames`) is read from memory; anything else is a
    path, decoded one frame at a time.
    """
    if isinstance(source, Video):
        yield iter(source.frames)
        return
    if isinstance(source, SampledFrames) and source.all_frames is not None:
        yield iter(source.all_frames)
        return
    path = source.path if isinstance(source, SampledFrames) else source
    if path is None:
        raise BadVideoError("expected frames in memory or a source path, got neither")
    with _decoding(path), FrameReader(path, verbose=verbose) as reader:
        yield (torch.from_numpy(reader.rgb(frame)) for _, _, frame in reader)
