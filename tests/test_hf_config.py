"""HuggingFace processor and config JSON read without transformers: what the view is told to compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidattack.errors import BadCheckpointError
from vidattack.models.hf_config import fold_rescale, preprocess_from_processor, read_folder_config


def test_rescale_with_offset_folds_into_mean_and_std() -> None:
    # ViViT: x255 / 127.5 - 1, then (v - 0.5) / 0.5  ==  (x - 0.75) / 0.25 for x in [0, 1]
    mean, std = fold_rescale((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1 / 127.5, offset=True)
    assert mean == pytest.approx((0.75,) * 3) and std == pytest.approx((0.25,) * 3)
    for x in (0.0, 0.3, 1.0):
        assert (x - mean[0]) / std[0] == pytest.approx(((x * 255 / 127.5 - 1) - 0.5) / 0.5)


def test_an_old_image_processor_file_with_an_int_size_and_offset() -> None:
    proc = {
        "image_processor_type": "VivitImageProcessor",
        "size": 256,  # the short side
        "crop_size": {"height": 224, "width": 224},
        "rescale_factor": 1 / 127.5,
        "offset": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    pre = preprocess_from_processor(proc, 32, "preprocessor_config.json")
    assert (pre.clip_len, pre.resize, pre.crop, pre.layout, pre.rounding) == (
        32,
        256,
        (224, 224),
        "NTCHW",
        "floor",
    )
    assert pre.mean == pytest.approx((0.75,) * 3)


def test_vjepa2_resizes_from_its_crop_and_switches_are_honoured() -> None:
    pre = preprocess_from_processor({"video_processor_type": "VJEPA2VideoProcessor", "crop_size": 256,
                                     "image_mean": [0.4] * 3, "image_std": [0.2] * 3}, 16, "p.json")  # fmt: skip
    assert (pre.resize, pre.crop) == (292, 256)  # int(256 * 256 / 224)
    bare = preprocess_from_processor(
        {"do_resize": False, "do_center_crop": False, "do_normalize": False}, 8, "p"
    )
    assert (bare.resize, bare.crop, bare.mean, bare.std) == (None, None, (0.0,) * 3, (1.0,) * 3)


@pytest.mark.parametrize(
    ("proc", "message"),
    [
        ({"size": {"shortest_edge": 224, "longest_edge": 400}}, "expected {'shortest_edge': N}"),
        ({"size": 112, "crop_size": 112}, "expected image_mean in p.json"),
        ({"size": 112, "crop_size": 112, "image_mean": [0.5] * 3, "image_std": [0, 1, 1]}, "positive"),
    ],
)
def test_processor_files_it_cannot_follow_are_refused(proc, message) -> None:
    with pytest.raises(BadCheckpointError, match=message.replace("{", r"\{").replace("}", r"\}")):
        preprocess_from_processor(proc, 16, "p.json")


def test_labels_from_id2label_with_string_keys_in_index_order(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"num_frames": 16, "id2label": {"1": "b", "0": "a"}}))
    cfg = read_folder_config(tmp_path / "config.json")
    assert cfg.labels() == ["a", "b"] and cfg.clip_len == 16 and cfg.processor is None
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "a", "2": "c"}}))
    with pytest.raises(BadCheckpointError, match=r"expected the indices 0\.\.1"):
        read_folder_config(tmp_path / "config.json").labels()


def test_without_a_processor_file_the_class_defaults_are_used_and_said(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "timesformer", "num_frames": 8, "image_size": 224})
    )
    cfg = read_folder_config(tmp_path / "config.json")
    pre = cfg.preprocess()
    assert (pre.clip_len, pre.resize, pre.crop) == (8, 224, 224)
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406))
    assert "class defaults" in cfg.notes[0]


def test_bicubic_is_kept_and_a_resampling_without_a_twin_is_noted(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"num_frames": 8}))
    for resample, want, notes in (
        (3, "bicubic", []),  # PIL's BICUBIC: the view resizes bicubically
        (2, "bilinear", []),
        (1, "bilinear", ["the processor's resample 1 is done as bilinear (antialiased)"]),  # LANCZOS
    ):
        proc = {
            "size": 112,
            "crop_size": 112,
            "resample": resample,
            "image_mean": [0.5] * 3,
            "image_std": [0.5] * 3,
        }
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(proc))
        cfg = read_folder_config(tmp_path / "config.json")
        pre = cfg.preprocess()
        assert (pre.resize, pre.resample, cfg.notes) == (112, want, notes)
