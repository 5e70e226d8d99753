"""The decoded-video types: `Video` (every frame in memory) and `SampledFrames` (only the frames the
model sees, plus every frame's timing). Both carry what is needed to write a file back with the source's
timing, rotation and audio, so the encoder takes either."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import torch

from vidattack.errors import BadParameterError


class Timing(Protocol):
    """What writing a file needs from a decoded source (`Video` and `SampledFrames` both have it)."""

    pts: list[int]
    time_base: Fraction
    rate: Fraction | None
    path: pathlib.Path | None
    rotation: int
    has_audio: bool
    notes: list[str]

    @property
    def num_frames(self) -> int: ...

    @property
    def fps(self) -> float: ...


def fps_of(rate: Fraction | None, pts: list[int], time_base: Fraction) -> float:
    """Frames per second: the stream's average rate, else measured from the pts, else 25.0."""
    if rate:
        return float(rate)
    span = (pts[-1] - pts[0]) * time_base if pts else 0
    if len(pts) > 1 and span > 0:
        return float((len(pts) - 1) / span)
    # A single frame of unknown rate: FFmpeg's own default.
    return 25.0


def check_frames(frames: object) -> None:
    """Raise `BadParameterError` unless `frames` is a non-empty `(T, H, W, 3)` uint8 tensor."""
    if not isinstance(frames, torch.Tensor):
        raise BadParameterError(f"expected frames as a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8:
        raise BadParameterError(f"expected uint8 frames in 0..255, got {frames.dtype} (quantize first)")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise BadParameterError(f"expected frames of shape (T>0, H, W, 3), got {tuple(frames.shape)}")


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
        check_frames(self.frames)
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
        return fps_of(self.rate, self.pts, self.time_base)

    def with_frames(self, frames: torch.Tensor) -> Video:
        """Return a copy with new `(T, H, W, 3)` uint8 frames (same T; H and W may differ) and the same
        metadata. The notes list is shared, so what `save_video` notes about the copy (audio left out,
        rotation baked in...) also shows in this video's report."""
        check_frames(frames)
        if frames.shape[0] != self.num_frames:
            raise BadParameterError(
                f"expected {self.num_frames} frames, got {frames.shape[0]} (shape {tuple(frames.shape)})"
            )
        return dataclasses.replace(self, frames=frames)


@dataclass
class SampledFrames:
    """The frames a model samples from a video file, decoded in one streaming pass, and the whole
    video's timing.

    `frames` is `(T', H, W, 3)` uint8 RGB, upright, one row per entry of `frame_ids` (sorted, unique
    indices into the video; ids past the end of a video shorter than expected are left out). `pts` has
    one entry per frame of the whole video (`num_frames` of them), in `time_base` units, sanitized as
    `load_video` does, so a file written from this keeps the source's timing. `all_frames` holds the
    whole video `(T, H, W, 3)` when it was small enough to keep (see `decode_sampled`), so writing and
    comparing need not decode the file again; else None. The other fields mean what they mean on `Video`.
    """

    frames: torch.Tensor
    frame_ids: tuple[int, ...]
    pts: list[int]
    time_base: Fraction
    rate: Fraction | None
    height: int
    width: int
    path: pathlib.Path | None = None
    rotation: int = 0
    source_codec: str = ""
    source_pix_fmt: str = ""
    bit_depth: int = 8
    has_audio: bool = False
    notes: list[str] = field(default_factory=list)
    all_frames: torch.Tensor | None = None

    @classmethod
    def of_video(cls, video: Video, frame_ids: Sequence[int]) -> SampledFrames:
        """The sample a model takes of a video already in memory (generated clips, tests): the frames at
        `frame_ids`, with the whole video kept, so writing and comparing read it from memory."""
        ids = tuple(sorted(set(int(i) for i in frame_ids)))
        return cls(
            frames=video.frames[list(ids)],
            frame_ids=ids,
            pts=list(video.pts),
            time_base=video.time_base,
            rate=video.rate,
            height=video.height,
            width=video.width,
            path=video.path,
            rotation=video.rotation,
            source_codec=video.source_codec,
            source_pix_fmt=video.source_pix_fmt,
            bit_depth=video.bit_depth,
            has_audio=video.has_audio,
            notes=list(video.notes),
            all_frames=video.frames,
        )

    @property
    def num_frames(self) -> int:
        """Number of frames T of the whole video (not of the sample)."""
        return len(self.pts)

    @property
    def fps(self) -> float:
        """Frames per second: the stream's average rate, else measured from the pts, else 25.0."""
        return fps_of(self.rate, self.pts, self.time_base)

    def replacements(self, frames: torch.Tensor) -> dict[int, torch.Tensor]:
        """`{frame id: frame}` for new `(T', H, W, 3)` uint8 frames in the order of `frame_ids` (what
        `rewrite` takes), e.g. the attack's adversarial sample."""
        check_frames(frames)
        if tuple(frames.shape) != tuple(self.frames.shape):
            raise BadParameterError(
                f"expected frames of shape {tuple(self.frames.shape)}, got {tuple(frames.shape)}"
            )
        return dict(zip(self.frame_ids, frames, strict=True))

    def to_video(self) -> Video:
        """The whole video as a `Video`; only when `all_frames` was kept (else `BadParameterError`)."""
        if self.all_frames is None:
            raise BadParameterError("expected a decode that kept all frames (all_frames is None)")
        return Video(
            frames=self.all_frames,
            pts=self.pts,
            time_base=self.time_base,
            rate=self.rate,
            path=self.path,
            rotation=self.rotation,
            source_codec=self.source_codec,
            source_pix_fmt=self.source_pix_fmt,
            bit_depth=self.bit_depth,
            has_audio=self.has_audio,
            notes=self.notes,
        )
