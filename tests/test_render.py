"""The pictures: colour scale, heatmap video frames, contact sheet size and colour bar, charts, skipping."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import replace

import pytest
import torch
from PIL import Image

from vidattack.pipeline.outputs import Outputs
from vidattack.pipeline.render import ROLES, RenderJob, render
from vidattack.pipeline.render.heatmap import (
    MIN_HEIGHT,
    HeatmapPainter,
    contact_sheet,
    heatmap_rgb,
    key_frames,
    level_colours,
    level_position,
)
from vidattack.pipeline.render.plots import history_chart, nice_ticks, per_frame_chart
from vidattack.pipeline.report import perturbation_stats
from vidattack.video import Video, load_video


def frames_pair(t=6, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(20, 230, (t, h, w, 3), generator=g, dtype=torch.uint8)
    clean[4, 5, 5, 2] = 20
    adv = clean.clone()
    adv[1, :10, :10, 0] += 4  # a 4/255 patch on frame 1
    clean[4, 5, 5, 2], adv[4, 5, 5, 2] = 20, 220  # one pixel changed a lot on frame 4
    return clean, adv


def test_the_colour_scale_is_black_for_unchanged_and_brighter_for_bigger_changes():
    lut = level_colours()
    assert lut.shape == (256, 3) and lut.dtype == torch.uint8
    assert lut[0].tolist() == [0, 0, 0]
    brightness = lut.float().sum(dim=1)
    assert brightness[1] > 40, "1/255 must be visibly different from unchanged"
    assert all(brightness[a] < brightness[b] for a, b in ((1, 4), (4, 16), (16, 64), (64, 255)))
    assert level_position(0) == 0 and level_position(255) == pytest.approx(1.0)


def test_heatmap_rgb_is_a_pure_vectorised_colour_mapping():
    clean, adv = frames_pair()
    heat = heatmap_rgb(clean, adv)
    lut = level_colours()
    assert heat.shape == clean.shape and heat.dtype == torch.uint8
    assert heat[1, 0, 0].tolist() == lut[4].tolist() and heat[1, 20, 20].tolist() == [0, 0, 0]
    assert heat[4, 5, 5].tolist() == lut[200].tolist()
    assert torch.equal(heatmap_rgb(clean[:3], adv[:3]), heat[:3]), "chunks give the same frames"


def test_the_heatmap_painter_scales_small_clips_annotates_and_greys_unsampled_frames():
    clean, adv = frames_pair()
    painter = HeatmapPainter.for_video(40, 48, max_level=200, sampled=[0, 1, 2, 3, 4])
    out = painter(clean, adv, range(6))
    h, w = painter.out_size
    assert out.shape == (6, h, w, 3) and h % 2 == 0 and w % 2 == 0
    assert painter.zoom >= 2 and h > 40 * painter.zoom, "scaled up, with a legend strip below"
    assert torch.equal(
        out[1, : painter.zoom, : painter.zoom],
        heatmap_rgb(clean, adv)[1, :1, :1].expand(painter.zoom, painter.zoom, 3),
    )
    legend = out[0, 40 * painter.zoom :]
    assert legend.float().std() > 10, "the strip holds a colour bar, not a blank band"
    picture = out[5, : 40 * painter.zoom]
    assert picture.max() > 0 and bool((picture[..., 0] == picture[..., 1]).all()), (
        "unsampled: grey clean frame"
    )
    assert not torch.equal(out[5, 40 * painter.zoom :], legend), "unsampled frames get their own strip"


def test_large_frames_keep_their_size_and_get_the_strip_over_their_bottom():
    clean = torch.zeros((2, 240, 320, 3), dtype=torch.uint8)
    painter = HeatmapPainter.for_video(240, 320, max_level=1)
    assert painter.overlay and painter(clean, clean, [0, 1]).shape == clean.shape


def test_key_frames_are_spread_over_the_video():
    assert key_frames([0.5] * 16) == [1, 5, 9, 13]
    assert key_frames([0.0] * 3 + [1.0] + [0.0] * 10 + [2.0, 3.0]) == [3, 14, 15]
    assert key_frames([0.0] * 16) == [0, 5, 10, 15]
    picked = key_frames([1.0 + 0.01 * (i % 3) for i in range(250)])
    assert len(picked) == 4 and min(b - a for a, b in itertools.pairwise(picked)) > 40


def test_the_contact_sheet_has_the_expected_size_and_a_colour_bar(tmp_path):
    clean, adv = frames_pair()
    path = tmp_path / "sheet.png"
    width, height = contact_sheet(path, clean, adv, [1, 4], title="clip.mp4: a -> b (pgd-linf)")
    img = Image.open(path).convert("RGB")
    assert img.size == (width, height)
    tile = 40 * 7  # 40 px scaled to at least MIN_HEIGHT with a whole factor
    assert tile >= MIN_HEIGHT and width == 3 * (48 * 7) + 2 * 10 + 2 * 14
    pixels = torch.from_numpy(__import__("numpy").asarray(img).copy())
    lut = level_colours()
    bar_rows = pixels[-100:]  # the colour bar sits at the bottom, above its key
    for level in (1, 16, 255):
        colour = lut[level]
        assert bool((bar_rows == colour).all(dim=-1).any()), f"colour of {level}/255 not on the bar"
    assert bool((pixels == lut[200]).all(dim=-1).any()), "the big one-pixel change is drawn"


def test_render_draws_only_the_pictures_asked_for(tmp_path):
    clean, adv = frames_pair()
    video = Video(
        frames=clean, pts=list(range(6)), time_base=__import__("fractions").Fraction(1, 8), rate=None
    )
    outputs = Outputs.for_stem(tmp_path, "s")
    history = [{"step": i, "loss": float(5 - i)} for i in range(5)]
    stats = perturbation_stats(clean, adv)
    job = RenderJob(video, adv.clone(), stats, outputs, history, title="s")

    rendered = render(job, which={"frames_plot"})
    assert set(rendered.paths) == {"frames_plot"} and not outputs.heatmap_video.exists()
    everything = render(replace(job, adv=adv.clone(), sampled=[0, 1, 2, 3, 4], overwrite=True))
    assert set(everything.paths) == set(ROLES) and everything.scale == 200
    heat = load_video(outputs.heatmap_video)
    assert heat.height > 40 and heat.num_frames == 6
    with pytest.raises(ValueError, match="expected pictures among"):
        render(job, which={"contact"})


def test_curves_plot_against_steps_or_queries_and_skip_constant_series(tmp_path):
    rows = [{"queries": 10 * i, "loss": float(i % 2), "eps": 0.05} for i in range(6)]
    assert history_chart(tmp_path / "c.png", rows, x="queries", title="vbad")
    assert not history_chart(tmp_path / "flat.png", [{"step": i, "eps": 0.05} for i in range(4)])
    assert not history_chart(tmp_path / "one.png", rows[:1])


def test_unicode_names_draw_without_glyph_warnings(tmp_path):
    title = "视频 🎬 clip.mp4: a -> b"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_frame_chart(tmp_path / "f.png", [0.1, 0.0, 0.2], title=title, sampled=[0, 1])
        history_chart(tmp_path / "c.png", [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}], title=title)
        clean, adv = frames_pair()
        contact_sheet(tmp_path / "s.png", clean, adv, [1], title=title)


def test_nice_ticks_are_round_numbers():
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    frames = nice_ticks(0, 15, 7, integer=True)
    assert frames[0] == 0 and frames[-1] <= 15 and all(float(v).is_integer() for v in frames)
