"""The one PyAV muxer every video vidattack writes goes through: the lossless and heatmap files
(`video.encode`) and the delivery copy (`delivery.encode`).

It owns what those writers share and must agree on: the nominal frame rate of a source, the video
stream's settings (size as stored, pixel format, the source's own time base so every pts is written
unchanged, display rotation), and muxing video packets as they are encoded with the source's audio
packets interleaved by time, cut at the end of the video. What differs stays with each writer: the
codec and its options, the colour conversion and tags, and whether audio is copied or re-encoded.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction

import av

from vidattack.errors import VidattackError
from vidattack.video.paths import display_path, reason
from vidattack.video.types import Timing


class AudioRefused(VidattackError):
    """The container refused the source's audio stream (before or while writing the header); a writer
    may then write the video alone."""


def nominal_rate(timing: Timing) -> Fraction:
    """The frame rate a writer declares: the source's average rate, else its fps as a fraction."""
    return timing.rate or Fraction(timing.fps).limit_denominator(1001)


def end_time(timing: Timing) -> Fraction:
    """Where the video ends, in seconds: its last frame's time plus one frame at the nominal rate."""
    return timing.pts[-1] * timing.time_base + 1 / nominal_rate(timing)


def add_video_stream(
    output: av.container.OutputContainer,
    codec: str,
    options: Mapping[str, str],
    *,
    rate: Fraction,
    size: tuple[int, int],
    pix_fmt: str,
    time_base: Fraction,
    rotation: int = 0,
) -> av.video.stream.VideoStream:
    """A video stream for upright frames of `size` (width, height), stored sideways when `rotation`
    (counter-clockwise degrees) says so and shown upright through the display matrix."""
    stream = output.add_stream(codec, rate=rate, options=dict(options))
    if not isinstance(stream, av.video.stream.VideoStream):
        raise VidattackError(f"{codec} is not a video encoder")
    width, height = size
    if rotation // 90 % 2:  # stored sideways
        width, height = height, width
    stream.width = width
    stream.height = height
    stream.pix_fmt = pix_fmt
    # Encode in the source's own time base so each pts is written unchanged (no rounding to 1/rate).
    stream.codec_context.time_base = time_base
    stream.time_base = time_base
    if rotation:
        stream.set_display_rotation(rotation)
    return stream


def open_audio_source(
    stack: contextlib.ExitStack, path: pathlib.Path
) -> tuple[av.container.InputContainer, av.audio.stream.AudioStream] | None:
    """`path` opened for the writer's whole encode, and its first audio stream (None if it has none)."""
    try:
        source = stack.enter_context(av.open(str(path), mode="r", metadata_errors="replace"))
    except (av.FFmpegError, OSError) as e:
        raise AudioRefused(f"cannot reopen {display_path(path)}: {reason(e)}") from e
    return (source, source.streams.audio[0]) if source.streams.audio else None


def timed_packets(
    packets: Iterable[av.Packet], end: Fraction | None, *, skip_negative: bool = False
) -> Iterator[tuple[Fraction, av.Packet]]:
    """`(start in seconds, packet)` for each packet that can be muxed, up to `end` (None: all)."""
    # Demuxers end with an empty flush packet and may give packets without dts: neither can be muxed.
    for packet in packets:
        if packet.dts is None or packet.size == 0 or packet.time_base is None:
            continue
        start = packet.dts * packet.time_base
        if start < 0 and skip_negative:
            continue
        if end is not None and start >= end:
            return  # audio past the end of the (possibly truncated) video is left out
        yield start, packet


class Muxer:
    """Muxes video packets as they come, the audio packets that start before each one first.

    `audio` is the output's audio stream and the `(start, packet)` pairs to put in it (from
    `timed_packets`); errors muxing them, or writing the header while they are there, raise
    `AudioRefused` so the caller can write the video without them.
    """

    def __init__(
        self,
        output: av.container.OutputContainer,
        muxer: str,
        audio: tuple[av.audio.stream.AudioStream, Iterator[tuple[Fraction, av.Packet]]] | None = None,
    ) -> None:
        self.output = output
        self.muxer = muxer
        self.audio_out: av.audio.stream.AudioStream | None = None
        self.packets: Iterator[tuple[Fraction, av.Packet]] = iter(())
        if audio is not None:
            self.audio_out, self.packets = audio
        self.pending: tuple[Fraction, av.Packet] | None = None
        self.header_written = False

    def audio_until(self, limit: Fraction | None) -> None:
        """Write the audio packets that start before `limit` (seconds; None: all that are left)."""
        if self.audio_out is None:
            return
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    return
            start, packet = self.pending
            if limit is not None and start > limit:
                return
            packet.stream = self.audio_out
            try:
                self.output.mux(packet)
            except (av.FFmpegError, ValueError) as e:
                raise AudioRefused(
                    f"{self.muxer} refused the {self.audio_out.codec_context.name} audio"
                ) from e
            self.pending = None

    def video(self, packets: list[av.Packet]) -> None:
        """Mux encoded video packets, the audio that comes before each first."""
        for packet in packets:
            if packet.dts is not None and packet.time_base is not None:
                self.audio_until(packet.dts * packet.time_base)
            try:
                self.output.mux(packet)
            except (av.FFmpegError, ValueError) as e:
                # The header goes out with the first packet; if it fails while an audio stream is in,
                # blame the audio once: the caller retries without it.
                if self.audio_out is not None and not self.header_written:
                    raise AudioRefused(reason(e)) from e
                raise
            self.header_written = True

    def finish(self) -> None:
        """Mux the audio that is left (call after the encoder's last packets)."""
        self.audio_until(None)
