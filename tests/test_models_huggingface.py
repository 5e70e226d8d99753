"""HuggingFace video classifiers kept as folders: loaded, predicted, attacked and evaluated via the CLI.

Every model is a tiny `transformers` classifier (hidden size 32, 2 layers, 2 heads, 112 px or less)
built from a config with random weights and written by `save_pretrained` with its video processor, as
a user's fine-tuned folder would be. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.models import load_model
from vidattack.models.capabilities import Capability, model_offers

transformers = pytest.importorskip("transformers", reason="the [hf] extra (in [test]) is not installed")

#: The bundled examples' classes, so that the tiny models can be evaluated on examples/labels.csv.
CLASSES = ["flash", "move_down", "move_left", "move_right", "move_up"]
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
#: The architectures tested, each built tiny by `save_tiny`.
KINDS = ("videomae", "timesformer", "vivit", "vjepa2", "videoprism")
runner = CliRunner()


def save_tiny(folder: Path, kind: str) -> Path:
    """A tiny randomly initialised `kind` classifier and its video processor, saved to `folder`."""
    t = transformers
    labels = {"id2label": dict(enumerate(CLASSES)), "label2id": {c: i for i, c in enumerate(CLASSES)}}
    if kind == "videomae":  # 16 frames at 112, processor resizes to the short side 112 (the examples' size)
        config = t.VideoMAEConfig(image_size=112, num_frames=16, tubelet_size=2, **SMALL, **labels)
        model, proc = t.VideoMAEForVideoClassification, t.VideoMAEVideoProcessor
        sizes = {"size": {"shortest_edge": 112}, "crop_size": {"height": 112, "width": 112}}
    elif kind == "timesformer":  # 8 frames: the centre 8 of a 16-frame clip
        config = t.TimesformerConfig(image_size=112, num_frames=8, **SMALL, **labels)
        model, proc = t.TimesformerForVideoClassification, t.TimesformerVideoProcessor
        sizes = {"size": {"shortest_edge": 112}, "crop_size": {"height": 112, "width": 112}}
    elif kind == "vivit":  # resize 112 -> 64, crop 56, rescale 1/127.5 with offset: every step used
        config = t.VivitConfig(image_size=56, num_frames=16, tubelet_size=[2, 8, 8], **SMALL, **labels)
        model, proc = t.VivitForVideoClassification, t.VivitVideoProcessor
        sizes = {"size": {"shortest_edge": 64}, "crop_size": {"height": 56, "width": 56}}
    elif kind == "vjepa2":  # its processor resizes to crop * 256 / 224: 112 -> 128, then crops 112
        config = t.VJEPA2Config(
            crop_size=112, frames_per_clip=16, pred_hidden_size=32, pred_num_hidden_layers=1,
            pred_num_attention_heads=2, **SMALL, **labels,
        )  # fmt: skip
        model, proc = t.VJEPA2ForVideoClassification, t.VJEPA2VideoProcessor
        sizes = {"crop_size": 112}
    elif kind == "videoprism":  # 16x16 tubelets at 112 (its 18x18 do not tile 112); frames in [0, 1]
        config = t.VideoPrismVisionConfig(
            image_size=112, num_frames=16, tubelet_size=[1, 16, 16], num_spatial_layers=1, num_temporal_layers=1,
            **{k: v for k, v in SMALL.items() if k != "num_hidden_layers"}, **labels,
        )  # fmt: skip
        # VideoPrism's video processor, set as the hub's: an exact resize (no crop), no normalisation
        model, proc = t.VideoPrismForVideoClassification, t.LlavaOnevisionVideoProcessor
        sizes = {"size": {"height": 112, "width": 112}, "do_normalize": False}
    else:
        raise ValueError(f"expected one of {', '.join(KINDS)}, got {kind}")
    torch.manual_seed(0)
    model(config).eval().save_pretrained(folder)
    proc(**sizes).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {kind: save_tiny(root / kind, kind) for kind in KINDS}


def invoke(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def records(result: Any, key: str = "results") -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)[key]


def processor_probabilities(folder: Path, frames: torch.Tensor) -> torch.Tensor:
    """What transformers itself gives: its processor and model on frames `(T, 3, H, W)` (uint8 or float
    0..255), softmax of the logits."""
    processor = transformers.AutoVideoProcessor.from_pretrained(folder)
    model = transformers.AutoModelForVideoClassification.from_pretrained(folder).eval()
    batch = processor(frames, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.flatten(1).softmax(-1)[0]  # VideoPrism's logits are (B, 1, K)


def decoded_sampled_frames(folder: Path, clip: Path) -> torch.Tensor:
    """The clip's frames that vidattack's plan samples for this model, decoded by vidattack, `(T, 3, H, W)`
    uint8."""
    from vidattack.video import load_video

    video = load_video(clip)
    ids = list(load_model(str(folder)).plan(video.frames.shape[0]).frame_ids)
    return video.frames[ids].permute(0, 3, 1, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_predict_on_a_folder_matches_the_transformers_processor(folders, example_clip, kind) -> None:
    folder = folders[kind]
    (got,) = records(invoke("predict", example_clip, "-m", folder, "--top-k", 5, "--format", "json"))
    frames = decoded_sampled_frames(folder, example_clip)
    # ViViT resizes 112 -> 64, V-JEPA 2 112 -> 128: HF rounds the resized frames to uint8, the view keeps
    # them differentiable floats; the processor run on float frames does the same arithmetic as the view
    resized = kind in ("vivit", "vjepa2")
    want = processor_probabilities(folder, frames.float() if resized else frames)
    assert got["index"] == int(want.argmax())
    assert got["label"] == CLASSES[got["index"]]
    for top in got["top"]:
        assert top["confidence"] == pytest.approx(float(want[top["index"]]), abs=1e-4)
    if resized:  # and on its own uint8 frames, the same class, probabilities within a rounding
        rounded = processor_probabilities(folder, frames)
        assert int(rounded.argmax()) == got["index"]
        assert (rounded - want).abs().max() < 1e-2


def test_a_folder_is_a_differentiable_model_with_its_labels_and_preprocessing(folders) -> None:
    view = load_model(str(folders["vivit"]))
    assert model_offers(view) is Capability.GRADIENTS
    assert view.labels == CLASSES
    pre = view.preprocess
    assert (pre.clip_len, pre.resize, pre.crop, pre.layout, pre.rounding) == (
        16,
        64,
        (56, 56),
        "NTCHW",
        "floor",
    )
    # rescale 1/127.5 with offset and mean/std 0.5 fold into mean 0.75, std 0.25 on [0, 1] frames
    assert pre.mean == pytest.approx((0.75,) * 3) and pre.std == pytest.approx((0.25,) * 3)
    x = torch.rand(1, 16, 3, 112, 112, requires_grad=True)
    view.bind(view.plan(16))(x)[0, 0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_pgd_fools_each_architecture_within_its_budget_on_the_written_file(
    folders, example_clip, tmp_path, kind
):
    out = tmp_path / "out"
    result = invoke(
        "perturb", example_clip, "-m", folders[kind], "-a", "pgd-linf", "--eps", "4/255", "--steps", 10,
        "--out", out, "--outputs", "adv,report", "--format", "json",
    )  # fmt: skip
    (report,) = records(result)
    assert report["success_after_encode"], report["reencoded"]
    assert report["reencoded"]["label"] != report["clean"]["label"]
    assert report["perturbation"]["linf"] <= 4 / 255 + 1e-6
    assert (out / f"{example_clip.stem}.adv.mp4").is_file()


@pytest.mark.parametrize("kind", ["timesformer", "videoprism"])
def test_batch_size_and_eval_work_on_a_folder(folders, example_clips, tmp_path, kind) -> None:
    clips = [c for c in example_clips if c.stem.rsplit("_", 1)[0] in CLASSES][:2]
    batched = records(
        invoke(
            "perturb", *clips, "-m", folders[kind], "--eps", "4/255", "--steps", 3,
            "--batch-size", 2, "--out", tmp_path / "out", "--outputs", "report", "--format", "json",
        )
    )  # fmt: skip
    assert [r["status"] for r in batched] == ["ok", "ok"]
    data = tmp_path / "labels.csv"
    data.write_text("path,label\n" + "".join(f"{c},{c.stem.rsplit('_', 1)[0]}\n" for c in clips))
    rows = records(
        key="rows",
        result=invoke(
            "eval", data, "-m", folders[kind], "-a", "pgd-linf", "--eps", "4/255", "--steps", 3,
            "--out", tmp_path / "eval", "--format", "json",
        )
    )  # fmt: skip
    assert [(r["attack"], r["videos"]) for r in rows] == [("pgd-linf", 2)]
    assert 0 <= rows[0]["robust_accuracy"] <= rows[0]["clean_accuracy"]


def test_models_dir_lists_what_a_folder_holds(folders) -> None:
    (info,) = records(invoke("models", folders["videomae"], "--format", "json"))
    assert info["kind"] == "huggingface"
    assert info["architecture"] == "VideoMAEForVideoClassification"
    assert info["weights"] == ["model.safetensors"]
    assert info["processor"] == "video_preprocessor_config.json"
    assert info["labels"] == CLASSES
    assert info["preprocess"]["clip_len"] == 16
    assert info["offers"] == "gradients" and "pgd-linf" in info["attacks"]


def test_pickled_weights_need_trust(folders, example_clip, tmp_path) -> None:
    # the older format (transformers 5 writes only safetensors): config, processor and a pickled state dict
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("config.json", "video_preprocessor_config.json"):
        (folder / name).write_bytes((folders["videomae"] / name).read_bytes())
    model = transformers.AutoModelForVideoClassification.from_pretrained(folders["videomae"])
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    refused = invoke("predict", example_clip, "-m", folder)
    assert refused.exit_code == 2
    assert "pytorch_model.bin" in refused.stderr and "--trust-checkpoint" in refused.stderr
    trusted = records(invoke("predict", example_clip, "-m", folder, "--trust-checkpoint", "--format", "json"))
    plain = records(invoke("predict", example_clip, "-m", folders["videomae"], "--format", "json"))
    assert [t["index"] for t in trusted[0]["top"]] == [t["index"] for t in plain[0]["top"]]
    assert trusted[0]["confidence"] == pytest.approx(plain[0]["confidence"], abs=1e-6)


def test_a_hub_name_is_refused_with_download_the_folder_first(example_clip) -> None:
    result = invoke("predict", example_clip, "-m", "MCG-NJU/videomae-base-finetuned-kinetics")
    assert result.exit_code == 2
    assert "download the folder first" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_transformers_the_error_names_the_extra(folders, example_clip, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    result = invoke("predict", example_clip, "-m", folders["videomae"])
    assert result.exit_code == 2
    assert "pip install 'vidattack[hf]'" in result.stderr


def test_a_folder_that_is_neither_kind_is_refused_naming_what_it_holds(tmp_path, example_clip) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = invoke("predict", example_clip, "-m", tmp_path)
    assert result.exit_code == 2
    assert "expected a HuggingFace folder" in result.stderr and "notes.txt" in result.stderr


def test_odd_frame_sizes_are_resized_and_cropped_as_transformers_rounds_them(folders) -> None:
    # 123x171 to the short side 64: the long side is 88.98, which transformers floors to 88 (torchvision
    # would round to 89); the crop offsets are floored too
    folder = folders["vivit"]
    frames = torch.randint(0, 256, (16, 3, 123, 171), generator=torch.Generator().manual_seed(0)).float()
    want = processor_probabilities(folder, frames)
    view = load_model(str(folder))
    with torch.no_grad():
        got = view.bind(view.plan(16))(frames[None] / 255).exp()[0]
    assert torch.allclose(got, want, atol=1e-5)


def test_a_half_precision_folder_is_attacked_in_float32(folders, tmp_path) -> None:
    folder = tmp_path / "half"
    model = transformers.AutoModelForVideoClassification.from_pretrained(folders["timesformer"])
    model.half().save_pretrained(folder)
    (folder / "video_preprocessor_config.json").write_bytes(
        (folders["timesformer"] / "video_preprocessor_config.json").read_bytes()
    )
    view = load_model(str(folder))
    assert {p.dtype for p in view.net.parameters()} == {torch.float32}
    x = torch.rand(1, 8, 3, 112, 112)  # the 8 frames its plan samples from a 16-frame video
    full = load_model(str(folders["timesformer"]))
    with torch.no_grad():
        got, want = view.bind(view.plan(16))(x).exp(), full.bind(full.plan(16))(x).exp()
    assert (got - want).abs().max() < 1e-2  # the weights rounded to float16, nothing else


def copy_folder(src: Path, dst: Path, *names: str) -> Path:
    """`dst` holding copies of the files `names` of `src`."""
    dst.mkdir()
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_a_whole_videoprism_processor_is_read_for_its_video_part_without_the_tokenizer(
    folders, tmp_path
) -> None:
    # VideoPrismProcessor (video processor + tokenizer) saves one processor_config.json, the video
    # processor's settings nested in it, beside the tokenizer's files; a classifier needs only the first
    source = folders["videoprism"]
    folder = copy_folder(source, tmp_path / "whole", "config.json", "model.safetensors")
    video_processor = transformers.AutoVideoProcessor.from_pretrained(source)
    transformers.VideoPrismProcessor(video_processor, transformers.VideoPrismTokenizer()).save_pretrained(
        folder
    )
    assert not (folder / "video_preprocessor_config.json").exists()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    (info,) = records(invoke("models", folder, "--format", "json"))
    assert info["processor"] == "processor_config.json"
    view, plain = load_model(str(folder)), load_model(str(source))
    assert view.preprocess == plain.preprocess
    assert (view.preprocess.resize, view.preprocess.crop, view.preprocess.std) == (
        (112, 112),
        None,
        (1.0,) * 3,
    )
    x = torch.rand(1, 16, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(view.bind(view.plan(16))(x), plain.bind(plain.plan(16))(x))


def test_videoprism_squashes_frames_to_its_exact_size_as_transformers_does(folders, tmp_path) -> None:
    # its processor resizes both sides to 112 (a 123x171 frame is squashed, not cropped); the hub's
    # file says bicubic, which the view does as bilinear and says so, so the exact comparison is made
    # on a copy whose file says bilinear
    source = folders["videoprism"]
    assert load_model(str(source)).notes == ["the processor's resample 3 is done as bilinear (antialiased)"]
    folder = copy_folder(source, tmp_path / "bilinear", "config.json", "model.safetensors")
    proc = json.loads((source / "video_preprocessor_config.json").read_text())
    (folder / "video_preprocessor_config.json").write_text(json.dumps({**proc, "resample": 2}))
    frames = torch.randint(0, 256, (16, 3, 123, 171), generator=torch.Generator().manual_seed(0)).float()
    want = processor_probabilities(folder, frames)
    view = load_model(str(folder))
    with torch.no_grad():
        got = view.bind(view.plan(16))(frames[None] / 255).exp()[0]
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("image_size", [112, [112, 112]])  # its config allows an int or a pair
def test_a_videoprism_processor_of_another_size_is_refused_at_load(
    folders, example_clip, tmp_path, image_size
) -> None:
    source = folders["videoprism"]
    folder = copy_folder(source, tmp_path / "96", "model.safetensors")
    config = json.loads((source / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "image_size": image_size}))
    proc = json.loads((source / "video_preprocessor_config.json").read_text())
    (folder / "video_preprocessor_config.json").write_text(
        json.dumps({**proc, "size": {"height": 96, "width": 96}})
    )
    result = invoke("predict", example_clip, "-m", folder)
    assert result.exit_code == 2
    assert "resizes to 96x96, but config.json expects 112x112 frames" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_videoprism_encoder_without_a_classifier_head_is_refused(folders, example_clip, tmp_path) -> None:
    source = folders["videoprism"]
    config = transformers.AutoConfig.from_pretrained(source)
    transformers.VideoPrismVisionModel(config).save_pretrained(tmp_path / "encoder")
    (tmp_path / "encoder" / "video_preprocessor_config.json").write_bytes(
        (source / "video_preprocessor_config.json").read_bytes()
    )
    result = invoke("predict", example_clip, "-m", tmp_path / "encoder")
    assert result.exit_code == 2
    assert "expected a video classifier" in result.stderr and "got VideoPrismVisionModel" in result.stderr


def test_a_videoprism_folder_without_its_processor_file_is_refused(folders, example_clip, tmp_path) -> None:
    # transformers has no default video processor for VideoPrism either (AutoVideoProcessor fails), and
    # the class it saves with, LlavaOnevisionVideoProcessor, defaults to 384 px and CLIP normalisation
    folder = copy_folder(folders["videoprism"], tmp_path / "bare", "config.json", "model.safetensors")
    result = invoke("predict", example_clip, "-m", folder)
    assert result.exit_code == 2
    assert "processor_config.json beside config.json (model_type videoprism_vision_model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
