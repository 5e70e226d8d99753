"""Tests for vidattack.video on tiny clips written with PyAV in each test's tmp_path."""

from __future__ import annotations

import hashlib
import logging
import pathlib
from collections.abc import Sequence
from fractions import Fraction

import av
import av.logging
import numpy as np
import pytest
import torch

from vidattack.errors import BadParameterError, BadVideoError, OutputExistsError, VidattackError
from vidattack.video import (
    VIDEO_EXTENSIONS,
    Video,
    decode_frames,
    is_video_path,
    load_video,
    save_video,
)
from vidattack.video import (
    sanitize_pts as _sanitize_pts,
)

TB = Fraction(1, 12800)  # what FFmpeg picks for 25 fps MP4


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def noise(t: int = 6, h: int = 33, w: int = 47, seed: int = 0) -> np.ndarray:
    """Random RGB frames: the worst case for a lossy codec, so any loss shows."""
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def write_clip(
    path: pathlib.Path,
    frames: np.ndarray,
    *,
    pts: Sequence[int] | None = None,
    codec: str = "libx264rgb",
    pix_fmt: str = "rgb24",
    options: dict[str, str] | None = None,
    rotation: int = 0,
    audio_seconds: float = 0.0,
    video_streams: int = 1,
) -> pathlib.Path:
    """Write `frames` (T, H, W, 3) as a video (lossless by default), optionally with a sine AAC track."""
    options = {"qp": "0"} if options is None and codec.startswith("libx264") else (options or {})
    pts = list(pts) if pts is not None else [512 * i for i in range(len(frames))]
    with av.open(str(path), "w") as container:
        streams = []
        for _ in range(video_streams):
            stream = container.add_stream(codec, rate=25, options=dict(options))
            if not isinstance(stream, av.video.stream.VideoStream):
                raise TypeError(f"{codec} is not a video codec")
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
            stream.codec_context.time_base = TB
            stream.time_base = TB
            if rotation:
                stream.set_display_rotation(rotation)
            streams.append(stream)
        audio = None
        if audio_seconds:
            audio = container.add_stream("aac", rate=8000)
            audio.layout = "mono"
        for stream in streams:
            for array, p in zip(frames, pts, strict=True):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                frame.pts, frame.time_base = p, TB
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        if audio is not None:
            n = int(8000 * audio_seconds)
            sine = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 8000)).astype(np.float32)[None]
            for start in range(0, n, 1024):
                chunk = np.ascontiguousarray(sine[:, start : start + 1024])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = 8000, start, Fraction(1, 8000)
                container.mux(audio.encode(aframe))
            container.mux(audio.encode(None))
    return path


def audio_packets(path: pathlib.Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(1 for p in container.demux(container.streams.audio[0]) if p.size)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seconds(video: Video) -> list[float]:
    return [float(p * video.time_base) for p in video.pts]


# --- decoding ----------------------------------------------------------------------------------------


def test_load_gives_upright_uint8_frames_and_timing(tmp_path: pathlib.Path) -> None:
    frames = noise()
    video = load_video(write_clip(tmp_path / "in.mp4", frames))
    assert video.frames.dtype == torch.uint8 and video.frames.is_contiguous()
    assert torch.equal(video.frames, torch.from_numpy(frames))
    assert (video.num_frames, video.height, video.width) == (6, 33, 47)
    assert video.pts == [0, 512, 1024, 1536, 2048, 2560]
    assert video.time_base == TB and video.rate == 25 and video.fps == 25.0
    assert video.source_codec == "h264" and video.bit_depth == 8 and not video.has_audio
    assert video.rotation == 0 and video.notes == []
    assert torch.equal(decode_frames(tmp_path / "in.mp4"), video.frames)


def test_vfr_pts_survive_load_and_save(tmp_path: pathlib.Path) -> None:
    pts = [0, 512, 1024, 2048, 2560, 4000]  # a gap and an off-grid frame
    video = load_video(write_clip(tmp_path / "vfr.mp4", noise(), pts=pts))
    assert video.pts == pts
    again = load_video(save_video(video, tmp_path / "out.mp4"))
    assert again.pts == pts and again.time_base == TB
    assert torch.equal(again.frames, video.frames)
    # Matroska stores milliseconds: same times, rounded.
    mkv = load_video(save_video(video, tmp_path / "out.mkv"))
    assert mkv.time_base == Fraction(1, 1000)
    assert seconds(mkv) == pytest.approx(seconds(video), abs=1e-3)


def test_ten_bit_source_decodes_to_8_bit_with_a_note(tmp_path: pathlib.Path) -> None:
    frames = np.full((4, 32, 48, 3), 120, dtype=np.uint8)
    path = write_clip(tmp_path / "ten.mkv", frames, codec="ffv1", pix_fmt="yuv444p10le")
    video = load_video(path)
    assert video.bit_depth == 10 and video.source_pix_fmt == "yuv444p10le"
    assert video.frames.dtype == torch.uint8 and video.frames.shape == (4, 32, 48, 3)
    assert (video.frames.int() - 120).abs().max() <= 1
    assert "10-bit source (yuv444p10le) decoded to 8-bit" in video.notes


def test_rotated_source_is_turned_upright_and_written_back_with_its_rotation(tmp_path: pathlib.Path) -> None:
    stored = noise(4, 32, 48)
    video = load_video(write_clip(tmp_path / "phone.mp4", stored, rotation=90))
    # A display rotation of 90 degrees counter-clockwise: the model sees the picture turned that way.
    assert video.rotation == 90 and video.frames.shape == (4, 48, 32, 3)
    assert torch.equal(video.frames, torch.rot90(torch.from_numpy(stored), 1, dims=(1, 2)))

    out = save_video(video, tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        first = next(container.decode(video=0))
        assert (first.width, first.height, first.rotation) == (48, 32, 90)  # stored as the source was
        assert np.array_equal(first.to_ndarray(format="rgb24"), stored[0])
    again = load_video(out)
    assert again.rotation == 90 and torch.equal(again.frames, video.frames)


def test_rotation_is_baked_in_where_the_container_cannot_store_it(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "phone.mp4", noise(4, 32, 48), rotation=-90))
    assert video.rotation == 270
    again = load_video(save_video(video, tmp_path / "out.avi"))
    assert again.rotation == 0 and torch.equal(again.frames, video.frames)
    assert any("cannot store display rotation" in note for note in video.notes)


def test_several_video_streams_use_the_first_and_say_so(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "two.mkv", noise(3), video_streams=2))
    assert video.num_frames == 3
    assert "2 video streams: used the first (stream #0)" in video.notes


def test_truncated_matroska_keeps_the_decodable_frames_with_a_note(tmp_path: pathlib.Path) -> None:
    data = write_clip(tmp_path / "full.mkv", noise(8, 32, 48)).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    video = load_video(cut)
    assert 1 <= video.num_frames < 8
    assert any(note.startswith("truncated") for note in video.notes)


def test_sanitize_pts_fills_missing_and_repeated_timestamps() -> None:
    assert _sanitize_pts([None, 10, 20, None, 40, 40, 60], None, TB) == ([0, 10, 20, 30, 40, 50, 60], 3)
    assert _sanitize_pts([None, None], Fraction(25), TB) == ([0, 512], 2)


# --- errors ------------------------------------------------------------------------------------------


def _audio_only(path: pathlib.Path) -> pathlib.Path:
    with av.open(str(path), "w", format="mp4") as container:
        audio = container.add_stream("aac", rate=8000)
        audio.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def _bad_input(kind: str, tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "directory":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.touch()
    elif kind == "truncated":
        data = write_clip(tmp_path / "whole.mp4", noise(8)).read_bytes()
        path.write_bytes(data[: len(data) // 2])  # the MP4 index (moov) is at the end: nothing opens
    elif kind == "audio_only":
        _audio_only(path)
    elif kind == "no_frames":
        path = tmp_path / "no_frames.mkv"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("ffv1", rate=25)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "bgr0"
            container.start_encoding()
    elif kind == "text":
        path = tmp_path / "readme.txt"
        path.write_text("not a video\n" * 40)
    elif kind == "image":
        path = tmp_path / "still.png"
        with av.open(str(path), "w", format="image2") as container:
            stream = container.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb24"
            frame = av.VideoFrame.from_ndarray(noise(1, 32, 48)[0], format="rgb24")
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", r"^no such file: .*missing\.mp4$"),
        ("directory", r"directory\.mp4 is a folder, not a video$"),
        ("garbage", r"is not a readable video: Invalid data found when processing input$"),
        ("empty", r"is empty \(0 bytes\)$"),
        ("truncated", r"is not a readable video: "),
        ("audio_only", r"audio_only\.mp4 has no video stream \(audio only\)$"),
        ("no_frames", r"no_frames\.mkv (is not a readable video|has a video stream but no frame)"),
        ("text", r"readme\.txt is a text file, not a video$"),
        ("image", r"still\.png is a still image, not a video$"),
    ],
)
def test_unreadable_inputs_raise_bad_video_error_with_one_line(
    kind: str, message: str, tmp_path: pathlib.Path
) -> None:
    path = _bad_input(kind, tmp_path)
    with pytest.raises(BadVideoError, match=message) as info:
        load_video(path, verbose=(kind == "garbage"))
    assert "\n" not in str(info.value)


def test_verbose_shows_ffmpeg_own_reason_in_the_log(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _bad_input("truncated", tmp_path)
    with caplog.at_level(logging.INFO, logger="libav"), pytest.raises(BadVideoError):
        load_video(path, verbose=True)
    assert av.logging.get_level() is None  # FFmpeg's log is off again afterwards
    assert "moov atom not found" in caplog.text


# --- encoding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", sorted(VIDEO_EXTENSIONS))
def test_lossless_save_round_trips_bit_for_bit_in_every_container(ext: str, tmp_path: pathlib.Path) -> None:
    frames = torch.from_numpy(noise(4))  # odd size 33x47
    video = load_video(write_clip(tmp_path / "in.mp4", frames.numpy()))
    out = save_video(video, tmp_path / f"out{ext}")
    assert out == tmp_path / f"out{ext}"
    again = load_video(out)
    assert torch.equal(again.frames, frames)
    # Same timing up to the container's clock (ms in some) and a constant start offset (MPEG-PS).
    got, want = seconds(again), seconds(video)
    assert [g - got[0] for g in got] == pytest.approx([w - want[0] for w in want], abs=1e-3)


def test_lossless_round_trip_of_a_tensor_made_in_memory(tmp_path: pathlib.Path) -> None:
    frames = torch.from_numpy(noise(5, 33, 47, seed=3))
    video = Video(frames=frames, pts=[0, 1, 2, 3, 5], time_base=Fraction(1, 30), rate=None)
    assert video.fps == pytest.approx(4 / (5 / 30))
    again = load_video(save_video(video, tmp_path / "made.mp4"))
    assert torch.equal(again.frames, frames)
    # MP4 raises a coarse time base to a finer one (1/30 -> 1/15360 here): the same instants.
    assert seconds(again) == pytest.approx([0, 1 / 30, 2 / 30, 3 / 30, 5 / 30], abs=1e-6)


def test_delivery_encode_pads_odd_sizes_and_stays_close(tmp_path: pathlib.Path) -> None:
    smooth = np.broadcast_to(np.linspace(40, 200, 47, dtype=np.uint8)[None, None, :, None], (4, 33, 47, 3))
    video = load_video(write_clip(tmp_path / "in.mp4", smooth))
    out = save_video(video, tmp_path / "player.mp4", codec="delivery")
    again = load_video(out)
    assert again.source_pix_fmt == "yuv420p" and again.frames.shape == (4, 34, 48, 3)
    assert (again.frames[:, :33, :47].float() - video.frames.float()).abs().mean() < 2
    assert any("padded 47x33 to 48x34" in note for note in video.notes)


def test_audio_is_copied_packet_for_packet(tmp_path: pathlib.Path) -> None:
    source = write_clip(tmp_path / "talk.mp4", noise(10, 32, 48), audio_seconds=0.3)
    video = load_video(source)
    assert video.has_audio
    for ext in (".mp4", ".mkv"):
        out = save_video(video, tmp_path / f"out{ext}")
        assert audio_packets(out) == audio_packets(source) > 0
        with av.open(str(out)) as container:
            assert container.streams.audio[0].codec_context.name == "aac"
    assert audio_packets(save_video(video, tmp_path / "mute.mp4", copy_audio=False)) == 0
    assert video.notes == []


def test_audio_the_container_refuses_is_left_out_with_a_note(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "talk.mp4", noise(4, 32, 48), audio_seconds=0.2))
    again = load_video(save_video(video, tmp_path / "out.webm"))
    assert not again.has_audio and torch.equal(again.frames, video.frames)
    assert "audio not copied: webm cannot hold aac audio" in video.notes


def test_existing_output_is_refused_unless_overwrite(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "in.mp4", noise(3)))
    target = tmp_path / "out.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"out\.mp4 exists \(use --overwrite\)$"):
        save_video(video, target)
    assert target.read_bytes() == b"precious"
    save_video(video, target, overwrite=True)
    assert torch.equal(load_video(target).frames, video.frames)


def test_input_is_never_modified(tmp_path: pathlib.Path) -> None:
    source = write_clip(tmp_path / "in.mp4", noise(4), audio_seconds=0.2)
    before = sha256(source)
    video = load_video(source)
    save_video(video, tmp_path / "out.mp4")
    with pytest.raises(VidattackError, match="refusing to overwrite the input video"):
        save_video(video, tmp_path / "." / "in.mp4", overwrite=True)
    assert sha256(source) == before


@pytest.mark.parametrize(
    ("failure", "expected", "message"),
    [
        (KeyboardInterrupt(), KeyboardInterrupt, None),  # the user pressing Ctrl-C halfway through
        (av.InvalidDataError(1094995529, "Invalid data"), VidattackError, r"could not write .*out\.mkv"),
    ],
)
def test_failed_write_leaves_no_temp_file_and_keeps_the_old_output(
    failure: BaseException,
    expected: type[BaseException],
    message: str | None,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    video = load_video(write_clip(tmp_path / "in.mp4", noise(6), audio_seconds=0.2))
    target = tmp_path / "out.mkv"
    target.write_bytes(b"old")
    real = av.VideoFrame.from_ndarray
    calls = []

    def failing(array: np.ndarray, format: str) -> av.VideoFrame:
        calls.append(1)
        if len(calls) == 3:
            raise failure
        return real(array, format=format)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", staticmethod(failing))
    with pytest.raises(expected, match=message):
        save_video(video, target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mkv"]
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("name", "codec", "error", "message"),
    [
        ("out.gif", "lossless", BadParameterError, r"expected an output file ending in one of"),
        ("out.mp4", "best", BadParameterError, r"expected codec 'lossless' or 'delivery', got 'best'"),
        ("nowhere/out.mp4", "lossless", VidattackError, r"output folder .*nowhere does not exist"),
    ],
)
def test_bad_save_requests(
    name: str, codec: str, error: type[Exception], message: str, tmp_path: pathlib.Path
) -> None:
    video = Video(
        frames=torch.zeros(2, 4, 6, 3, dtype=torch.uint8), pts=[0, 1], time_base=Fraction(1, 25), rate=None
    )
    with pytest.raises(error, match=message):
        save_video(video, tmp_path / name, codec=codec)
    assert list(tmp_path.iterdir()) == []


# --- the Video object --------------------------------------------------------------------------------


def test_with_frames_keeps_metadata_and_checks_the_shape(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "in.mp4", noise(3)))
    brighter = video.with_frames(video.frames // 2 + 1)
    assert brighter.pts == video.pts and brighter.path == video.path and brighter.notes is video.notes
    with pytest.raises(BadParameterError, match="expected 3 frames, got 2"):
        video.with_frames(video.frames[:2])
    with pytest.raises(BadParameterError, match="expected uint8 frames"):
        video.with_frames(video.frames.float() / 255)
    with pytest.raises(BadParameterError, match=r"expected frames of shape \(T>0, H, W, 3\)"):
        video.with_frames(video.frames[..., :1])


def test_is_video_path() -> None:
    assert is_video_path("clip.MP4") and is_video_path(pathlib.Path("a/b.webm"))
    assert not is_video_path("notes.txt") and not is_video_path("mp4")
    assert all(ext == ext.lower() and ext.startswith(".") for ext in VIDEO_EXTENSIONS)
