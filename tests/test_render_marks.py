"""What the plots mark beside their data: the largest change as a dashed line over the per-frame bars
(in a neutral colour, not a class colour), and a marker per recorded step on the attack's curve."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vidattack.pipeline.render.plots import _BAR, _TEAL, history_chart, per_frame_chart


def test_the_per_frame_chart_draws_the_largest_change_as_a_dashed_line(tmp_path):
    per_frame = [2 / 255, 1 / 255, 3 / 255]
    per_frame_chart(tmp_path / "a.png", per_frame, linf=4 / 255)
    per_frame_chart(tmp_path / "b.png", per_frame)
    a, b = (
        np.asarray(Image.open(tmp_path / "a.png").convert("RGB")),
        np.asarray(Image.open(tmp_path / "b.png")),
    )
    dark = (a.sum(axis=2) < 150).sum(axis=1)  # ink per pixel row
    dashed = [y for y in range(a.shape[0]) if (a[y] != b[y]).any() and dark[y] > 200]
    assert dashed, "no dashed line at the largest change"
    bars = (a == np.array(_BAR, dtype=np.uint8)).all(axis=2)
    assert bars.sum() > 1000 and min(dashed) < np.nonzero(bars.any(axis=1))[0].min()  # above the bars


def test_the_curve_marks_each_step(tmp_path):
    history = [{"step": i, "objective": float(i * i)} for i in range(5)]
    assert history_chart(tmp_path / "c.png", history)
    img = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    teal = (img == np.array(_TEAL, dtype=np.uint8)).all(axis=2)
    columns = teal.sum(axis=0)
    assert (columns >= 6).sum() >= 5 * 3  # each marker is a 7-pixel disc: thicker than the 2-pixel line


def test_each_heatmap_video_frame_names_the_video_and_its_number():
    import torch

    from vidattack.pipeline.render.heatmap import HeatmapPainter

    clean = torch.zeros((2, 40, 48, 3), dtype=torch.uint8)
    adv = clean + 3
    plain = HeatmapPainter.for_video(40, 48, max_level=3)(clean, adv, [7, 8])
    titled = HeatmapPainter.for_video(40, 48, max_level=3, title="c.mp4: a -> b")(clean, adv, [7, 8])
    band = titled[:, :14]
    assert not torch.equal(band, plain[:, :14]) and (band.float().mean(dim=-1) > 200).any()  # light text
    assert not torch.equal(titled[0, :14], titled[1, :14])  # frame 7 and frame 8 differ in their stamp
    assert torch.equal(titled[:, 20:], plain[:, 20:])  # below the stamp, the picture is untouched
