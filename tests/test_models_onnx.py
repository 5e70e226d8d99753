"""ONNX exports run with onnxruntime: scores only, so black-box attacks fit and white-box ones are refused.

The model is a small 3D CNN exported in the test by `torch.onnx.export` (the dynamo exporter: the graph
in `model.onnx`, the weights beside it in `model.onnx.data`) into the onnx-community layout
(`onnx/model.onnx` under a folder holding `config.json` and `preprocessor_config.json`). Every
onnxruntime call is counted by wrapping `InferenceSession.run`, independently of vidattack's counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.errors import BadParameterError
from vidattack.models import load_model
from vidattack.models.capabilities import Capability, model_offers

ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra (in [test]) is not installed")
pytest.importorskip("onnxscript", reason="torch.onnx.export needs onnxscript (in [test])")

CLASSES = ["flash", "move_down", "move_left", "move_right", "move_up"]
runner = CliRunner()


class FrameConvNet(nn.Module):
    """(B, T, 3, 112, 112) -> (B, 5) logits: a strided 3D conv, pooled to a 4x4 grid, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=(1, 4, 4), padding=1)
        self.pool = nn.AvgPool3d((8, 7, 7))  # (B, 8, 8, 28, 28) -> (B, 8, 1, 4, 4)
        self.head = nn.Linear(128, len(CLASSES))
        with torch.no_grad():  # steeper than the default init, so small changes of pixels matter
            self.conv.weight.mul_(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.permute(0, 2, 1, 3, 4)))  # (B, 8, T, 28, 28)
        return self.head(self.pool(h).flatten(1))


def tie_top_two(net: FrameConvNet, clip: torch.Tensor) -> None:
    """Shift the head's bias so the clip's two best classes are 0.05 apart: a model any score-based
    attack can flip within a few hundred queries (the test is about counting, not strength)."""
    with torch.no_grad():
        logits = net(clip)[0]
        first, second = logits.topk(2).indices.tolist()
        net.head.bias[second] += logits[first] - logits[second] - 0.05


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory: pytest.TempPathFactory, example_clip: Path) -> Path:
    from vidattack.video import load_video

    folder = tmp_path_factory.mktemp("onnx-community")
    frames = load_video(example_clip).frames[4:12]  # the centre 8 frames the view will sample
    clip = (frames.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5  # (8, 3, 112, 112), normalised
    net = FrameConvNet().eval()
    tie_top_two(net, clip[None])
    (folder / "onnx").mkdir()
    torch.onnx.export(
        net, (torch.rand(2, 8, 3, 112, 112),), str(folder / "onnx" / "model.onnx"),
        input_names=["pixel_values"], output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    )  # fmt: skip
    torch.save(net.state_dict(), folder / "reference.pt")
    config = {"architectures": ["FrameConvNet"], "num_frames": 8, "id2label": dict(enumerate(CLASSES))}
    (folder / "config.json").write_text(json.dumps(config))
    processor = {
        "size": {"shortest_edge": 112},
        "crop_size": {"height": 112, "width": 112},
        "rescale_factor": 1 / 255,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture
def session_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every `InferenceSession.run`, in order."""
    calls: list[int] = []
    run = ort.InferenceSession.run

    def counted(self: Any, outputs: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(int(next(iter(feeds.values())).shape[0]))
        return run(self, outputs, feeds, *args, **kwargs)

    monkeypatch.setattr(ort.InferenceSession, "run", counted)
    return calls


def invoke(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def test_an_onnx_folder_gives_the_torch_models_scores_and_no_gradients(onnx_folder: Path) -> None:
    assert (onnx_folder / "onnx" / "model.onnx.data").is_file()  # the weights beside the graph
    view = load_model(str(onnx_folder))
    assert model_offers(view) is Capability.SCORES
    assert view.labels == CLASSES
    assert (view.preprocess.clip_len, view.preprocess.layout) == (8, "NTCHW")
    net = FrameConvNet()
    net.load_state_dict(torch.load(onnx_folder / "reference.pt"))
    x = torch.rand(3, 8, 3, 112, 112)
    with torch.no_grad():
        want = net.eval()((x - 0.5) / 0.5).log_softmax(-1)
        got = view.bind(view.plan(8))(x)
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(BadParameterError, match="gives scores but no gradients"):
        view.bind(view.plan(8))(x.requires_grad_(True))


def test_vbad_fools_the_onnx_model_within_its_budget_counting_every_call(
    onnx_folder: Path, example_clip: Path, tmp_path: Path, session_calls: list[int]
) -> None:
    budget = 400
    result = invoke(
        "perturb", example_clip, "-m", onnx_folder, "-a", "vbad", "--set", f"max_queries={budget}",
        "--out", tmp_path, "--outputs", "report", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["results"]
    assert report["success"] and report["success_after_encode"]
    assert report["queries"] <= budget
    # every video onnxruntime classified: the attack's queries (its clean label and judging included)
    # and one more, the written file classified again for the report's `reencoded`
    assert sum(session_calls) == report["queries"] + 1


def test_pgd_on_an_onnx_model_is_refused_before_decoding_naming_what_fits(
    onnx_folder: Path, tmp_path: Path, session_calls: list[int]
) -> None:
    missing = tmp_path / "not-yet-decoded.mp4"  # never opened: the refusal comes first
    for command in (
        ["perturb", missing, "-a", "pgd-linf", "--out", tmp_path / "o"],
        ["eval", missing, "-a", "pgd-linf", "--out", tmp_path / "e"],
    ):
        result = invoke(*command, "-m", onnx_folder / "onnx" / "model.onnx")
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            f"Error: {onnx_folder / 'onnx' / 'model.onnx'} gives scores but no gradients, and pgd-linf needs "
            "gradients: use hsja, p-bad, sr-bad, vbad"  # hsja: labels suffice
        )
    assert session_calls == []


def test_a_universal_perturbation_learned_on_a_surrogate_applies_to_the_onnx_model(
    onnx_folder: Path, example_clip: Path, tmp_path: Path, session_calls: list[int]
) -> None:
    # learned white-box on the bundled tiny-c3d (onnxruntime is never asked), then applied: adding a
    # fixed perturbation asks the scores-only model for scores alone
    train = tmp_path / "train"
    train.mkdir()
    (train / example_clip.name).write_bytes(example_clip.read_bytes())
    pert = tmp_path / "pert.safetensors"
    learned = invoke("universal", train, "-o", pert, "--set", "epochs=1")
    assert learned.exit_code == 0, learned.output
    assert session_calls == []

    result = invoke(
        "perturb", example_clip, "--apply", pert, "-m", onnx_folder,
        "--out", tmp_path / "o", "--outputs", "report", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["results"]
    assert report["attack"]["name"] == "universal"
    assert report["attack"]["params"] == {"perturbation": str(pert)}
    assert report["perturbation"]["linf"] > 0
    assert len(session_calls) >= 2  # at least the clean label and the judging of the applied video
    # learning one is still white-box: refused on the scores-only model, before decoding
    refused = invoke("universal", train, "-o", tmp_path / "p2.safetensors", "-m", onnx_folder)
    assert refused.exit_code == 2
    assert "universal needs gradients" in refused.stderr


@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning"
)  # the TorchScript exporter, kept for its batch-1 file
def test_a_bare_onnx_file_takes_its_layout_from_the_graph_and_the_rest_from_metadata(tmp_path: Path) -> None:
    import onnx

    net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 3))
    path = tmp_path / "c3d.onnx"
    # the TorchScript exporter: one self-contained file, a fixed batch of 1, (1, 3, T, H, W) input
    torch.onnx.export(net.eval(), (torch.rand(1, 3, 4, 32, 32),), str(path), dynamo=False)
    model = onnx.load(str(path))
    for key, value in {
        "vidattack.preprocess": json.dumps({"clip_len": 4, "resize": 32, "crop": 32, "mean": [0.4] * 3}),
        "vidattack.labels": json.dumps(["a", "b", "c"]),
    }.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))

    view = load_model(str(path))
    assert (view.preprocess.layout, view.preprocess.clip_len, view.preprocess.mean) == (
        "NCTHW",
        4,
        (0.4,) * 3,
    )
    assert view.labels == ["a", "b", "c"]
    x = torch.rand(2, 4, 3, 32, 32)  # two videos: run one at a time by the batch-1 graph
    with torch.no_grad():
        want = net((x - 0.4).permute(0, 2, 1, 3, 4)).log_softmax(-1)
        assert torch.allclose(view.bind(view.plan(4))(x), want, atol=1e-5)
    (info,) = json.loads(invoke("models", path, "--format", "json").stdout)["results"]
    assert (info["kind"], info["offers"], info["labels"]) == ("onnx", "scores", ["a", "b", "c"])
    assert "vbad" in info["attacks"] and "pgd-linf" not in info["attacks"]


def test_without_onnxruntime_the_error_names_the_extra(onnx_folder, example_clip, monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    result = invoke("predict", example_clip, "-m", onnx_folder)
    assert result.exit_code == 2
    assert "pip install 'vidattack[onnx]'" in result.stderr
