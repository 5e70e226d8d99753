"""The streaming video layer: probe, memory budget, sampled decode, rewrite, compare, map_frames.

The streaming functions must give exactly what the whole-video ones give (`load_video`, `save_video`,
`report.perturbation_stats`, `heatmap.heatmap_rgb`): same frames, same numbers, same bytes.
"""

from __future__ import annotations

import os
import pathlib
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from test_video import audio_packets, noise, sha256, write_clip

from vidattack.errors import BadVideoError, VidattackError
from vidattack.pipeline.render.heatmap import heatmap_rgb
from vidattack.pipeline.report import perturbation_stats, reportable
from vidattack.video import (
    DEFAULT_MAX_MEMORY,
    FrameReader,
    Video,
    check_budget,
    compare,
    decode_planned,
    decode_sampled,
    estimate_bytes,
    format_bytes,
    load_video,
    map_frames,
    parse_bytes,
    probe,
    rewrite,
    save_video,
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def perturbed(video: Video, ids: list[int], seed: int = 0) -> torch.Tensor:
    """The video's frames with +-3 level noise on `ids`: what an attack hands the writer."""
    frames = video.frames.clone()
    g = torch.Generator().manual_seed(seed)
    delta = torch.randint(-3, 4, frames[ids].shape, generator=g, dtype=torch.int16)
    frames[ids] = (frames[ids].to(torch.int16) + delta).clamp(0, 255).to(torch.uint8)
    return frames


# --- probe -------------------------------------------------------------------------------------------


def test_probe_reads_the_container_without_decoding_the_video(tmp_path: pathlib.Path) -> None:
    path = write_clip(tmp_path / "in.mp4", noise(6, 33, 47), audio_seconds=0.2)
    info = probe(path)
    assert (info.width, info.height, info.frames, info.frames_from) == (47, 33, 6, "container")
    assert info.rate == 25 and info.fps == 25.0 and info.time_base == Fraction(1, 12800)
    assert info.has_audio and info.rotation == 0 and info.codec == "h264" and info.bit_depth == 8
    assert info.path == path and info.size_bytes == path.stat().st_size


def test_probe_counts_packets_where_the_container_has_no_count(tmp_path: pathlib.Path) -> None:
    info = probe(write_clip(tmp_path / "in.mkv", noise(7), codec="ffv1", pix_fmt="bgr0"))
    assert (info.frames, info.frames_from) == (7, "packets")


def test_probe_reads_rotation_and_bit_depth(tmp_path: pathlib.Path) -> None:
    rotated = probe(write_clip(tmp_path / "phone.mp4", noise(3, 32, 48), rotation=90))
    assert rotated.rotation == 90 and (rotated.width, rotated.height) == (32, 48)
    assert (rotated.stored_width, rotated.stored_height) == (48, 32)
    ten = probe(write_clip(tmp_path / "ten.mkv", noise(3, 32, 48), codec="ffv1", pix_fmt="yuv444p10le"))
    assert ten.bit_depth == 10 and ten.pix_fmt == "yuv444p10le"


def _special(kind: str, tmp_path: pathlib.Path) -> pathlib.Path:
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.mp4")
        return tmp_path / "pipe.mp4"
    if kind == "device":
        return pathlib.Path("/dev/zero")
    if kind == "loop":
        os.symlink(tmp_path / "b.mp4", tmp_path / "a.mp4")
        os.symlink(tmp_path / "a.mp4", tmp_path / "b.mp4")
        return tmp_path / "a.mp4"
    if kind == "dangling":
        os.symlink(tmp_path / "gone.mp4", tmp_path / "link.mp4")
        return tmp_path / "link.mp4"
    if kind == "folder":
        (tmp_path / "dir.mp4").mkdir()
        return tmp_path / "dir.mp4"
    if kind == "empty":
        (tmp_path / "empty.mp4").touch()
        return tmp_path / "empty.mp4"
    raise ValueError(kind)


@pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and symlinks as on Linux")
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", r"pipe\.mp4 is not a regular file \(a FIFO\)$"),
        ("device", r"^/dev/zero is not a regular file \(a character device\)$"),
        ("loop", r"a\.mp4 is a symlink loop$"),
        ("dangling", r"link\.mp4 is a symlink to a missing file \(.*gone\.mp4\)$"),
        ("folder", r"dir\.mp4 is a folder, not a video$"),
        ("empty", r"empty\.mp4 is empty \(0 bytes\)$"),
    ],
)
def test_files_that_are_not_videos_are_named_once_in_one_line(
    kind: str, message: str, tmp_path: pathlib.Path
) -> None:
    path = _special(kind, tmp_path)
    for call in (probe, load_video, lambda p: decode_sampled(p, [0])):
        with pytest.raises(BadVideoError, match=message) as info:
            call(path)
        text = str(info.value)
        assert "\n" not in text and text.count(path.name) == 1


def test_odd_names_decode_and_are_printed_on_one_line(tmp_path: pathlib.Path) -> None:
    data = write_clip(tmp_path / "src.mp4", noise(3)).read_bytes()
    raw = os.fsencode(tmp_path) + b"/bad_\xff\nname.mp4"
    with open(raw, "wb") as fh:
        fh.write(data)
    path = pathlib.Path(os.fsdecode(raw))
    assert probe(path).frames == 3 and decode_sampled(path, [1]).frames.shape == (1, 33, 47, 3)
    out = rewrite(path, tmp_path / "out\xe9.mp4", {})
    assert torch.equal(load_video(out).frames, load_video(path).frames)
    broken = pathlib.Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad_\xff\nname.mkv"))
    broken.write_bytes(b"junk" * 100)
    with pytest.raises(BadVideoError, match=r"bad_\\xff\\nname\.mkv is not a readable video") as info:
        probe(broken)
    assert "\n" not in str(info.value)


# --- memory budget -----------------------------------------------------------------------------------


def test_budget_refuses_huge_declared_sizes_before_decoding(tmp_path: pathlib.Path) -> None:
    info = probe(write_clip(tmp_path / "in.mp4", noise(4, 32, 48)))
    huge = info.__class__(**{**info.__dict__, "width": 8192, "height": 8192})
    need = estimate_bytes(huge, 4)
    # 4 sampled frames of 8192x8192 x 3 channels x (8 float32 copies + 2 uint8) plus the decode window
    assert need == 4 * 8192 * 8192 * 3 * 34 + 24 * 8192 * 8192 * 3 + 2 * 8192 * 8192 * 3 + 4 * 40
    message = (
        r"in\.mp4 needs about 32\.6 GB to attack 4 frames of 8192x8192 "
        r"\(budget 8\.0 GB; raise it with --max-memory\)$"
    )
    with pytest.raises(BadVideoError, match=message):
        check_budget(huge, 4, DEFAULT_MAX_MEMORY)
    assert check_budget(huge, 4, 40 * 10**9) == need
    assert check_budget(info, 4) < 10**7


def test_sizes_are_parsed_and_printed() -> None:
    assert parse_bytes("8GB") == parse_bytes("8 gb") == 8 * 10**9
    assert (
        parse_bytes("2GiB") == 2 * 2**30
        and parse_bytes("800M") == 800 * 10**6
        and parse_bytes("4096") == 4096
    )
    for bad in ("", "-1GB", "lots", "8 parsecs", "inf"):
        with pytest.raises(ValueError, match="expected a memory size"):
            parse_bytes(bad)
    assert format_bytes(12_884_901_888) == "12.9 GB" and format_bytes(512) == "512 B"


def test_decode_refuses_a_first_frame_larger_than_declared(tmp_path: pathlib.Path) -> None:
    path = write_clip(tmp_path / "in.mp4", noise(4, 32, 48))
    small = probe(path).__class__(**{**probe(path).__dict__, "width": 2, "height": 2})
    need = estimate_bytes(small, 2)
    with pytest.raises(BadVideoError, match=r"needs about .* to attack 2 frames of 48x32"):
        decode_sampled(path, [0, 1], small, budget_bytes=need + 1)


# --- sampled decode ----------------------------------------------------------------------------------


def _sources(tmp_path: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        "plain": write_clip(tmp_path / "plain.mp4", noise(8), audio_seconds=0.3),
        "vfr": write_clip(tmp_path / "vfr.mp4", noise(6), pts=[0, 512, 1024, 2048, 2560, 4000]),
        "rotated": write_clip(tmp_path / "phone.mp4", noise(5, 32, 48), rotation=90),
        "ten_bit": write_clip(tmp_path / "ten.mkv", noise(5, 32, 48), codec="ffv1", pix_fmt="yuv444p10le"),
    }


@pytest.mark.parametrize("case", ["plain", "vfr", "rotated", "ten_bit"])
def test_decode_sampled_gives_the_frames_and_timing_load_video_gives(
    case: str, tmp_path: pathlib.Path
) -> None:
    path = _sources(tmp_path)[case]
    whole = load_video(path)
    ids = [0, 2, whole.num_frames - 1]
    sampled = decode_sampled(path, ids)
    assert sampled.frame_ids == tuple(ids) and sampled.all_frames is None
    assert torch.equal(sampled.frames, whole.frames[ids])
    assert sampled.pts == whole.pts and sampled.time_base == whole.time_base and sampled.rate == whole.rate
    assert (sampled.height, sampled.width, sampled.rotation) == (whole.height, whole.width, whole.rotation)
    assert sampled.notes == whole.notes and sampled.fps == whole.fps
    assert (sampled.source_pix_fmt, sampled.bit_depth, sampled.has_audio) == (
        whole.source_pix_fmt,
        whole.bit_depth,
        whole.has_audio,
    )
    kept = decode_sampled(path, ids, keep_all_bytes=10**8)
    assert kept.all_frames is not None and torch.equal(kept.all_frames, whole.frames)


def test_ids_past_the_end_are_left_out_and_the_plan_is_redone_on_the_true_count(
    tmp_path: pathlib.Path,
) -> None:
    # MP4 with its index first (faststart), cut: the container still declares all 12 frames
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264rgb", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 48, 32, "rgb24"
        for array in noise(12, 32, 48):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    declared = probe(cut).frames
    true_count = load_video(cut).num_frames
    assert (declared, probe(cut).frames_from) == (12, "container") and 1 < true_count < declared
    assert decode_sampled(cut, [0, declared - 1]).frame_ids == (0,)
    calls: list[int] = []

    def plan(n: int) -> list[int]:
        calls.append(n)
        return [n // 2, n - 1]

    for keep in (0, 10**8):  # re-decoded, or taken from the kept whole video
        calls.clear()
        sampled = decode_planned(cut, plan, keep_all_bytes=keep)
        assert calls == [declared, true_count]
        assert sampled.frame_ids == (true_count // 2, true_count - 1)
        assert torch.equal(sampled.frames, load_video(cut).frames[list(sampled.frame_ids)])


def test_a_stream_longer_than_allowed_is_cut_with_a_clear_error(tmp_path: pathlib.Path) -> None:
    path = write_clip(tmp_path / "in.mp4", noise(6))
    with (
        pytest.raises(BadVideoError, match=r"in\.mp4 yields more than 4 frames$"),
        FrameReader(path, max_frames=4) as r,
    ):
        for _ in r:
            pass


# --- rewrite -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "ext"),
    [
        ("plain", ".mp4"),
        ("plain", ".mkv"),
        ("vfr", ".mp4"),
        ("rotated", ".mp4"),
        ("rotated", ".avi"),
        ("ten_bit", ".mp4"),
    ],
)
def test_rewrite_writes_the_bytes_save_video_writes(case: str, ext: str, tmp_path: pathlib.Path) -> None:
    # (Matroska writes random segment and track UIDs, so two writes of one video differ in those bytes
    # alone: there the files' contents are compared instead.)
    path = _sources(tmp_path)[case]
    video = load_video(path)
    ids = [1, 3]
    adv = perturbed(video, ids)
    expected = save_video(video.with_frames(adv), tmp_path / f"expected{ext}")

    streamed = decode_sampled(path, ids)  # no whole video kept: rewrite decodes the source again
    replaced = streamed.replacements(adv[ids])
    same = same_file if ext != ".mkv" else same_content
    assert same(rewrite(streamed, tmp_path / f"streamed{ext}", replaced), expected)
    assert streamed.notes == video.notes  # what the encode noted (rotation baked in...) is reported
    kept = decode_sampled(path, ids, keep_all_bytes=10**8)
    assert same(rewrite(kept, tmp_path / f"kept{ext}", replaced), expected)
    assert same(rewrite(path, tmp_path / f"from_path{ext}", replaced), expected)


def same_file(a: pathlib.Path, b: pathlib.Path) -> bool:
    return sha256(a) == sha256(b)


def same_content(a: pathlib.Path, b: pathlib.Path) -> bool:
    va, vb = load_video(a), load_video(b)
    same = torch.equal(va.frames, vb.frames) and va.pts == vb.pts and va.time_base == vb.time_base
    return same and audio_packets(a) == audio_packets(b)


def test_rewrite_checks_what_it_is_given(tmp_path: pathlib.Path) -> None:
    path = write_clip(tmp_path / "in.mp4", noise(4))
    sampled = decode_sampled(path, [0])
    with pytest.raises(VidattackError, match=r"expected frame indices in 0\.\.3, got 4"):
        rewrite(sampled, tmp_path / "out.mp4", {4: sampled.frames[0]})
    with pytest.raises(VidattackError, match=r"expected a uint8 frame of shape \(33, 47, 3\) at 0"):
        rewrite(sampled, tmp_path / "out.mp4", {0: sampled.frames[0].float()})
    with pytest.raises(VidattackError, match="refusing to overwrite the input video"):
        rewrite(sampled, path, {}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# --- compare and map_frames ----------------------------------------------------------------------------


def test_compare_gives_perturbation_stats_and_the_written_sample(tmp_path: pathlib.Path) -> None:
    path = _sources(tmp_path)["plain"]
    video = load_video(path)
    ids = [0, 3, 5]
    adv = perturbed(video, ids)
    adv[3, 0, 0] = 0  # a value turned to 0: the ratio bound is infinite
    written = save_video(video.with_frames(adv), tmp_path / "adv.mp4")
    expected = perturbation_stats(video.frames, load_video(written).frames)
    for source in (decode_sampled(path, ids), decode_sampled(path, ids, keep_all_bytes=10**8), video):
        result = compare(source, written, ids)
        assert reportable(result.stats()) == expected
        assert result.written.frame_ids == tuple(ids) and torch.equal(result.written.frames, adv[ids])
        assert result.scale == max(1, round(expected["linf"] * 255))
        assert result.frames[3].linf == int((adv[3].short() - video.frames[3].short()).abs().max())
    kept = compare(path, written, ids, keep_all_bytes=10**8).written
    assert kept.all_frames is not None and torch.equal(kept.all_frames, adv)


def test_compare_refuses_files_of_another_length(tmp_path: pathlib.Path) -> None:
    video = load_video(write_clip(tmp_path / "in.mp4", noise(4)))
    shorter = write_clip(tmp_path / "short.mp4", noise(3))
    with pytest.raises(VidattackError, match=r"short\.mp4 has 3 frames, expected more"):
        compare(video, shorter, [0])
    longer = write_clip(tmp_path / "long.mp4", noise(5))
    with pytest.raises(VidattackError, match=r"long\.mp4 has more than the expected 4 frames"):
        compare(video, longer, [0])


def test_map_frames_writes_the_heatmap_video_save_video_writes(tmp_path: pathlib.Path) -> None:
    # Lossless on both sides and compared by decoded frames: libx264 in this PyAV build is not
    # bit-deterministic from run to run (about one encode in ten differs), so hashes of two lossy
    # encodes of the same frames can differ; the frames of two lossless ones cannot.
    path = _sources(tmp_path)["plain"]
    video = load_video(path)
    written = save_video(video.with_frames(perturbed(video, [1, 2])), tmp_path / "adv.mp4")
    again = load_video(written)
    expected = heatmap_rgb(video.frames, again.frames)

    def heat(index: int, clean: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        return heatmap_rgb(clean[None], adv[None])[0]

    comparison = compare(decode_sampled(path, [1]), written)
    got = map_frames(decode_sampled(path, [1]), written, heat, tmp_path / "streamed.mp4", codec="lossless")
    assert torch.equal(load_video(got).frames, expected)
    got = map_frames(path, comparison.written, heat, tmp_path / "from_path.mp4", codec="lossless")
    assert torch.equal(load_video(got).frames, expected)
    assert load_video(got).pts == video.pts


def test_whole_video_noise_helper_is_deterministic() -> None:
    video = Video(frames=torch.from_numpy(noise(3)), pts=[0, 1, 2], time_base=Fraction(1, 25), rate=None)
    assert torch.equal(perturbed(video, [1]), perturbed(video, [1]))
    assert np.array_equal(perturbed(video, [1])[0].numpy(), video.frames[0].numpy())
