"""`vidattack train --init FOLDER` on a HuggingFace video classifier: it fine-tunes adversarially and
writes a `save_pretrained` folder that `--model` loads back with the trained network's predictions.

The model is a tiny VideoMAE built from a config with random weights (as in
tests/test_models_huggingface.py), labelled with the synthetic generator's classes so that it trains
on `synthetic:N`. Nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.data.synthetic import CLASSES
from vidattack.models import load_model
from vidattack.models.trained import read_training_metadata
from vidattack.train import TrainConfig, train_model

transformers = pytest.importorskip("transformers", reason="the [hf] extra (in [test]) is not installed")

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
runner = CliRunner()


@pytest.fixture(scope="module")
def videomae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny VideoMAE (16 frames at 112 px) and its video processor, saved as a user's folder would be."""
    folder = tmp_path_factory.mktemp("hf") / "videomae"
    t = transformers
    labels = {"id2label": dict(enumerate(CLASSES)), "label2id": {c: i for i, c in enumerate(CLASSES)}}
    config = t.VideoMAEConfig(image_size=112, num_frames=16, tubelet_size=2, **SMALL, **labels)
    torch.manual_seed(0)
    t.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    t.VideoMAEVideoProcessor(
        size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112}
    ).save_pretrained(folder)
    return folder


def invoke(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def fgsm_args(init: Path, out: Path, *extra: str) -> list[str]:
    """`vidattack train`: one epoch of FGSM adversarial training on one synthetic clip per class."""
    return [
        *("train", "--init", str(init), "--data", "synthetic:1", "--adversarial", "fgsm"),
        *("--epochs", "1", "--batch-size", "10", "--eval-size", "1", "--out", str(out)),
        *("--format", "json", "--quiet", *extra),
    ]


def test_a_fine_tuned_folder_loads_back_with_the_trained_predictions(videomae: Path, tmp_path: Path) -> None:
    out = tmp_path / "videomae-at"
    config = TrainConfig(epochs=1, batch_size=10, lr=1e-2, attack="fgsm", eval_size=1)
    result = train_model(config, data="synthetic:1", out=out, init=str(videomae))

    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "vidattack_training.json",
        "video_preprocessor_config.json",
    ]
    loaded, original = load_model(str(out)), load_model(str(videomae))
    assert loaded.labels == list(CLASSES) and loaded.preprocess == result.view.preprocess
    clips = torch.rand(3, 16, 3, 112, 112, generator=torch.Generator().manual_seed(1))  # (B, T, C, H, W)
    with torch.no_grad():
        trained, reloaded, before = (v.net.eval()(clips) for v in (result.view, loaded, original))
    torch.testing.assert_close(reloaded, trained, atol=1e-5, rtol=1e-5)
    assert not torch.equal(before, trained)  # the saved network is the trained one, not the original
    changed = [
        k for k, v in original.net.state_dict().items() if not torch.equal(v, loaded.net.state_dict()[k])
    ]
    assert changed  # (one small step: the weights moved, the logits only a little)
    meta = read_training_metadata(out)
    assert (
        meta["training"]["attack"] == "fgsm" and meta["training"]["arch"] == "VideoMAEForVideoClassification"
    )
    assert meta["heldout"]["history"][0]["epoch"] == 1


def test_cli_trains_a_folder_that_predict_loads_and_refuses_a_safetensors_name(
    videomae: Path, tmp_path: Path, example_clip: Path
) -> None:
    out = tmp_path / "at"
    r = invoke(*fgsm_args(videomae, out))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["arch"] == "VideoMAEForVideoClassification"
    predicted = invoke("predict", example_clip, "--model", out, "--format", "json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)["results"][0]["label"] in CLASSES

    again = invoke(*fgsm_args(videomae, out))
    assert again.exit_code == 1 and "exists" in again.output
    replaced = invoke(*fgsm_args(videomae, out, "--overwrite", "--seed", "1"))
    assert replaced.exit_code == 0, replaced.output
    assert read_training_metadata(out)["training"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["at"]  # no temp folder or old copy left beside it

    named = tmp_path / "at.safetensors"
    refused = invoke(*fgsm_args(videomae, named))
    assert refused.exit_code == 2
    assert "saved as a folder" in refused.output and str(named) in refused.output
    assert not named.exists()
