"""Delivery copies and delivery-aware attacks (issue #17): spec parsing, the delivered file, the exact
colour path, the BPDA/EOT model wrapper, perturbation measures, and an attack that survives H.264."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import EXAMPLES, toy_view

import vidattack
from vidattack.delivery import (
    DeliveryModel,
    delivery_perturbation,
    mp4_top_level_boxes,
    parse_delivery,
    parse_robust_to,
    perturbation,
    roundtrip,
    write_delivery,
)
from vidattack.delivery.colour import rgb_to_yuv, subsample_420, yuv420_path
from vidattack.errors import BadParameterError, OutputExistsError
from vidattack.models.view import sampled_frames
from vidattack.video import load_video

# -- spec -----------------------------------------------------------------------------------------


def test_a_bare_codec_gets_ffmpeg_defaults():
    h264 = parse_delivery("h264")
    assert (h264.codec, h264.crf, h264.encoder, h264.extension) == ("h264", 23, "libx264", ".mp4")
    assert h264.encoder_options()["preset"] == "medium"
    vp9 = parse_delivery("VP9")
    assert (vp9.codec, vp9.crf, vp9.extension) == ("vp9", 31, ".webm")
    assert vp9.encoder_options()["b"] == "0"  # constant quality, not libvpx's default bitrate cap


def test_options_ranges_and_lists_parse():
    spec = parse_delivery("h264:crf=18,preset=slow,matrix=bt709")
    assert (spec.crf, spec.preset, spec.matrix) == (18, "slow", "bt709")
    assert str(spec) == "h264:crf=18,preset=slow,matrix=bt709"
    assert parse_delivery("vp9:crf=40,speed=4").speed == 4
    assert parse_robust_to("h264:crf=18-28").crfs == tuple(range(18, 29))
    assert parse_robust_to("h264:crf=18,23,28,preset=fast").crfs == (18, 23, 28)
    assert str(parse_robust_to("h264:crf=18-28")) == "h264:crf=18-28"
    assert parse_robust_to("h264:crf=28,18").at(18).crf == 18
    tuned = parse_robust_to("h264:crf=18-28,eot=2,sigma=1.5")
    assert (tuned.eot, tuned.sigma, str(tuned)) == (2, 1.5, "h264:crf=18-28,eot=2,sigma=1.5")
    assert (parse_robust_to("vp9").eot, parse_robust_to("vp9").sigma) == (None, None)  # the defaults
    assert parse_delivery("h264").matrix_for(480) == "bt601"
    assert parse_delivery("h264").matrix_for(1080) == "bt709"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("h265", "expected --delivery codec h264 or vp9, got 'h265' (did you mean h264?)"),
        ("h264:crf=60", "expected h264 crf in 0..51, got 60"),
        ("vp9:crf=64", "expected vp9 crf in 0..63, got 64"),
        (
            "h264:crf=18-28",
            "expected one crf for --delivery, got the range '18-28' (ranges are for --robust-to)",
        ),
        ("h264:crf=18,23", "got '23' (several CRFs are for --robust-to)"),
        ("h264:crf=abc", "expected an integer crf in --delivery, got 'abc'"),
        ("h264:qp=0", "expected --delivery keys crf, preset, matrix for h264, got 'qp'"),
        ("h264:preset=fastest", "expected preset one of ultrafast"),
        ("vp9:preset=slow", "expected --delivery keys crf, speed, matrix for vp9, got 'preset'"),
        ("vp9:speed=9", "expected vp9 speed in 0..8 (libvpx cpu-used), got 9"),
        ("h264:crf=20,crf=21", "expected crf once"),
        ("h264:eot=2", "got 'eot' (eot is for --robust-to)"),
        ("", "expected --delivery CODEC[:crf=N,...] with CODEC h264 or vp9, got ''"),
    ],
)
def test_bad_specs_fail_with_one_clear_message(text, message):
    with pytest.raises(BadParameterError) as err:
        parse_delivery(text)
    assert message in str(err.value)


def test_robust_to_ranges_are_checked():
    with pytest.raises(BadParameterError, match="LOW <= HIGH"):
        parse_robust_to("h264:crf=28-18")
    with pytest.raises(BadParameterError, match=r"expected h264 crf in 0\.\.51, got 52"):
        parse_robust_to("h264:crf=40-52")
    with pytest.raises(BadParameterError, match="expected one CRF for a delivery encode"):
        _ = parse_robust_to("h264:crf=18-20").crf


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("h264:eot=0", "expected eot in 1..64 (encodes per forward pass), got 0"),
        ("h264:eot=two", "expected an integer eot in --robust-to, got 'two'"),
        ("h264:sigma=-1", "expected sigma in 0..16 (pixels), got -1"),
        ("h264:sigma=nan", "expected sigma in 0..16 (pixels), got nan"),
        ("h264:sigma=wide", "expected a number sigma in --robust-to, got 'wide'"),
        ("h264:eots=2", "expected --robust-to keys crf, preset, matrix, eot, sigma for h264, got 'eots'"),
    ],
)
def test_robust_to_optimisation_keys_are_checked(text, message):
    with pytest.raises(BadParameterError) as err:
        parse_robust_to(text)
    assert message in str(err.value)


# -- the delivered file -----------------------------------------------------------------------------


def _moving_frames(t: int = 12, h: int = 48, w: int = 64) -> torch.Tensor:
    """A textured square moving right over a gradient: (T, H, W, 3) uint8."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frames = torch.empty((t, h, w, 3), dtype=torch.uint8)
    for i in range(t):
        frame = torch.stack((xs * 255 // w, ys * 255 // h, torch.full_like(xs, 90)), dim=-1)
        box = (slice(10, 30), slice(4 + 2 * i, 24 + 2 * i))
        frame[box] = torch.tensor([230, 40, 40]) + ((xs[box] + ys[box]) % 3).unsqueeze(-1) * 10
        frames[i] = frame
    return frames


def _clip_with_audio(path: Path, frames: torch.Tensor, fps: int = 10) -> Path:
    """An MP4 with lossless video and an AAC sine tone as long as the video."""
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264rgb", rate=fps, options={"qp": "0"})
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i, frame in enumerate(frames.numpy()):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
        samples = 48000 * frames.shape[0] // fps
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, start
            out.mux(audio.encode(af))
        out.mux(audio.encode(None))
    return path


@pytest.fixture
def clip_with_audio(tmp_path) -> Path:
    return _clip_with_audio(tmp_path / "tone.mp4", _moving_frames())


def test_h264_delivery_file_plays_in_browsers(clip_with_audio, tmp_path):
    video = load_video(clip_with_audio)
    assert video.has_audio
    out = tmp_path / "tone.delivery.mp4"
    record = write_delivery(video, out, parse_delivery("h264:crf=23"))

    assert record.path == out and record.size_bytes == out.stat().st_size > 0
    assert record.fast_start is True and record.audio == "copied aac"
    boxes = mp4_top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")  # fast start: the index comes first
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.profile in ("High", "Main", "Constrained Baseline")
        assert stream.average_rate == 10
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]
        frames = list(c.decode(stream))
    assert len(frames) == video.num_frames
    assert frames[0].colorspace == 6 and frames[0].color_range == 1  # tagged BT.601 limited range
    delivered = load_video(out)
    assert delivered.pts == video.pts and delivered.time_base == video.time_base
    assert not list(tmp_path.glob(".*tmp*"))  # the temp file was renamed, not left behind


def test_vp9_delivery_reencodes_audio_webm_cannot_hold(clip_with_audio, tmp_path):
    video = load_video(clip_with_audio)
    record = write_delivery(video, tmp_path / "tone.delivery.webm", parse_delivery("vp9:speed=8"))
    assert record.fast_start is None and record.audio == "re-encoded aac -> opus"
    assert "re-encoded to opus" in record.notes[0]
    with av.open(str(record.path)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert [a.codec_context.name for a in c.streams.audio] == ["opus"]
        assert len(list(c.decode(video=0))) == video.num_frames


def test_delivery_refuses_to_overwrite_and_checks_the_extension(clip_with_audio, tmp_path):
    video = load_video(clip_with_audio)
    with pytest.raises(BadParameterError, match=r"expected a \.mp4 file for h264"):
        write_delivery(video, tmp_path / "x.webm", parse_delivery("h264"))
    out = write_delivery(video, tmp_path / "x.mp4", parse_delivery("h264")).path
    with pytest.raises(OutputExistsError):
        write_delivery(video, out, parse_delivery("h264"))
    write_delivery(video, out, parse_delivery("h264:crf=30"), overwrite=True)


def test_odd_sizes_are_padded_and_noted(tmp_path):
    from conftest import write_clip

    video = load_video(write_clip(tmp_path / "odd.mp4", _moving_frames(6, 33, 45)))
    record = write_delivery(video, tmp_path / "odd.delivery.mp4", parse_delivery("h264"))
    assert (record.width, record.height) == (46, 34) and "padded 45x33 to 46x34" in record.notes[0]
    assert roundtrip(video.frames, parse_delivery("h264"), 10).shape == video.frames.shape


def test_roundtrip_is_the_delivery_file_decoded(tmp_path):
    from conftest import write_clip

    video = load_video(write_clip(tmp_path / "c.mp4", _moving_frames(), fps=10))
    spec = parse_delivery("h264:crf=28")
    written = load_video(write_delivery(video, tmp_path / "c.delivery.mp4", spec).path).frames
    # The same encode: bit-exact for VP9; libx264 here jitters from run to run (see encode.py), so
    # H.264 is compared by the size of its error.
    vp9 = parse_delivery("vp9:crf=40,speed=8")
    vp9_file = load_video(write_delivery(video, tmp_path / "c.delivery.webm", vp9).path).frames
    assert torch.equal(roundtrip(video.frames, vp9, video.fps), vp9_file)
    file_error = perturbation(video.frames, written).map
    assert abs(perturbation(video.frames, roundtrip(video.frames, spec, video.fps)).map - file_error) < 1
    # The codec is lossy at crf 28, and a higher CRF loses more.
    worse = roundtrip(video.frames, spec, video.fps, crf=45)
    assert 0 < file_error < perturbation(video.frames, worse).map


# -- the exact colour path -----------------------------------------------------------------------------


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_colour_path_matches_ffmpegs_own_yuv420p_conversion(matrix):
    g = torch.Generator().manual_seed(0)
    frames = torch.cat(
        (_moving_frames(4), torch.randint(0, 256, (4, 48, 64, 3), dtype=torch.uint8, generator=g))
    )
    colorspace = {"bt601": "ITU601", "bt709": "ITU709"}[matrix]
    converted = [
        av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=colorspace, dst_color_range="MPEG", interpolation="AREA"
        )
        for f in frames.numpy()
    ]
    x = frames.permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
    # Encoder side: our Y' and 2x2-mean chroma are FFmpeg's planes before rounding to 8 bits.
    yuv = rgb_to_yuv(x, matrix) * 255
    planes = torch.from_numpy(np.stack([f.to_ndarray() for f in converted])).float()  # (T, 3H/2, W)
    assert (planes[:, :48] - yuv[:, 0]).abs().max() <= 0.51
    cb = planes[:, 48:60].reshape(-1, 24, 32)
    assert (cb - subsample_420(yuv[:, 1])).abs().max() <= 0.75  # fixed-point rounding
    # Round trip to RGB: within 1 level for 95% of values, 3 at most (8-bit rounding of Y' and chroma).
    ours = (yuv420_path(x, matrix) * 255).round()
    theirs = torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in converted])).permute(0, 3, 1, 2)
    err = (ours - theirs.float()).abs()
    assert err.mean() < 0.6 and (err > 1).float().mean() < 0.05 and err.max() <= 3


def test_colour_path_is_differentiable_and_handles_odd_sizes():
    x = torch.rand(2, 3, 3, 7, 9, requires_grad=True)
    y = yuv420_path(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- the model wrapper ---------------------------------------------------------------------------------


def _toy_video(t: int = 8) -> torch.Tensor:
    return _moving_frames(t, 40, 48).permute(0, 3, 1, 2).unsqueeze(0).float() / 255  # (1, T, 3, H, W)


def test_wrapper_value_is_the_real_round_trip_and_its_gradient_flows():
    view = toy_view()
    bound = view.bind(view.plan(8))
    spec = parse_delivery("vp9:crf=40,speed=8")  # VP9: bit-exact run to run, unlike libx264 here
    model = DeliveryModel(bound, spec, fps=10)
    x = _toy_video().requires_grad_(True)
    log_p = model(x)
    frames = (x.detach()[0].permute(0, 2, 3, 1) * 255).round().to(torch.uint8)  # (T, H, W, 3)
    expected = bound(sampled_frames(roundtrip(frames, spec, 10), bound.plan))
    assert torch.equal(log_p, expected)
    (grad,) = torch.autograd.grad(log_p[0, 0], x)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    for p in bound.parameters():
        assert p.grad is None
    # H.264 too: the value is a real encode (lossy), and gradients flow.
    h264 = DeliveryModel(bound, parse_delivery("h264:crf=30"), fps=10)
    delivered = h264.deliver(x)
    assert 0 < (delivered - x).abs().mean() < 10 / 255
    assert torch.equal(delivered, (delivered * 255).round() / 255)  # on the 8-bit grid, as decoded
    (grad,) = torch.autograd.grad(h264(x)[0, 0], x)
    assert grad.abs().sum() > 0


def test_wrapper_exposes_what_attacks_read_from_a_bound_model():
    view = toy_view()
    bound = view.bind(view.plan(8))
    model = DeliveryModel(bound, parse_delivery("h264"))
    assert model.plan is bound.plan
    assert model.num_classes == 5 and model.labels == bound.labels
    assert model.has_frame_predictions is False
    assert model.training is False
    assert model.max_offset == 0  # the plan samples the whole video: no GOP phase to randomise


def test_eot_draws_are_seeded_and_cover_the_crf_range():
    view = toy_view()
    bound = view.bind(view.plan(8))
    spec = parse_robust_to("h264:crf=18-28")

    def draws(seed: int) -> list[tuple[int, int]]:
        model = DeliveryModel(bound, spec, generator=torch.Generator().manual_seed(seed), max_offset=7)
        return [model.draw() for _ in range(60)]

    assert draws(1) == draws(1) and draws(1) != draws(2)
    assert {c for c, _ in draws(1)} == set(range(18, 29))
    assert {o for _, o in draws(1)} == set(range(8))


def test_offsets_shift_the_gop_but_keep_every_frame():
    frames = _moving_frames(8)
    spec = parse_delivery("h264:crf=30")
    plain, shifted = roundtrip(frames, spec, 10), roundtrip(frames, spec, 10, offset=3)
    assert shifted.shape == plain.shape and not torch.equal(shifted, plain)
    assert perturbation(frames, shifted).map < 5


def test_attack_budget_still_holds_on_the_lossless_output():
    view = toy_view()
    bound = view.bind(view.plan(8))
    model = DeliveryModel(bound, parse_robust_to("h264:crf=20-30"), fps=10)
    x = _toy_video()
    result = vidattack.get_attack("pgd-linf", eps=4 / 255, steps=2)(model, x, seed=0)
    assert (result.adversarial - x).abs().max() <= 4 / 255 + 1e-6
    # the clean forward, one more step, the template's final check: every one a real encode
    assert result.queries == 2 and len(model.draws) == 3


def test_bad_wrapper_arguments_are_refused():
    bound = toy_view().bind(toy_view().plan(8))
    with pytest.raises(BadParameterError, match="expected a DeliverySpec"):
        DeliveryModel(bound, "h264")  # type: ignore[arg-type]
    with pytest.raises(BadParameterError, match="expected samples >= 1"):
        DeliveryModel(bound, parse_delivery("h264"), samples=0)


# -- measuring --------------------------------------------------------------------------------------


def test_perturbations_are_measured_in_levels():
    clean = torch.full((2, 4, 4, 3), 100, dtype=torch.uint8)
    adv = clean.clone()
    adv[0, 0, 0, 0] = 104
    delivered = clean.clone()
    delivered[1] = 101
    delivered_clean = clean.clone()
    delivered_clean[1] = 101
    m = delivery_perturbation(clean, adv, delivered, delivered_clean)
    assert (m.lossless.linf, m.lossless.l2, m.lossless.map) == (4, 4.0, 4 / 96)
    assert m.delivered.linf == 1 and m.delivered.map == 0.5
    assert m.surviving is not None and m.surviving.linf == 0  # the attack did not get through
    assert m.to_dict()["unit"] == "8-bit levels (1/255)"


# -- an attack that survives H.264 ------------------------------------------------------------------


def test_delivery_aware_pgd_survives_h264_crf23_where_plain_pgd_does_not(c3d):
    """move_left_1 with tiny-c3d, Linf 4/255, 10 steps: after a real libx264 crf 23 encode, plain PGD's
    video is classified move_left again; delivery-aware PGD's is not (measured: move_left at 0.89 vs
    0.07). About 6 s on one thread."""
    video = load_video(EXAMPLES / "move_left_1.mp4")
    plan = c3d.plan(video.num_frames)
    bound = c3d.bind(plan)
    x = sampled_frames(video.frames, plan)
    spec = parse_delivery("h264:crf=23")
    clean = int(bound(x).argmax())
    attack = vidattack.get_attack("pgd-linf", eps=4 / 255, steps=10)

    def after_delivery(adversarial: torch.Tensor) -> int:
        frames = (adversarial[0].permute(0, 2, 3, 1) * 255).round().to(torch.uint8)  # (T, H, W, 3)
        delivered = roundtrip(frames, spec, video.fps)
        return int(bound(sampled_frames(delivered, plan)).argmax())

    plain = attack(bound, x, seed=0)
    assert bool(plain.success[0])  # fooled on the lossless file...
    assert after_delivery(plain.adversarial) == clean  # ...but not after delivery
    aware_model = DeliveryModel(bound, spec, fps=video.fps, generator=torch.Generator().manual_seed(0))
    aware = attack(aware_model, x, seed=0)
    assert (aware.adversarial - x).abs().max() <= 4 / 255 + 1e-6
    assert after_delivery(aware.adversarial) != clean


def test_fraction_frame_rates_are_accepted():
    assert roundtrip(_moving_frames(3), parse_delivery("h264"), Fraction(30000, 1001)).shape[0] == 3
