"""Loading classifiers from checkpoint files: wrappers, prefixes, formats, metadata, trust and errors.

Every network is a randomly initialised torchvision model saved in the test; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
import torchvision.models.video as video_models
from safetensors.torch import save_file
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError, UsageError
from vidattack.models import ModelView, Preprocess, list_models, load_model
from vidattack.models.architectures import ARCHITECTURES, get_architecture

LABELS = ["archery", "bowling", "cooking", "dancing", "eating", "fencing", "golf"]


@pytest.fixture(scope="module")
def mc3() -> nn.Module:
    torch.manual_seed(0)
    return video_models.mc3_18(num_classes=7).eval()


@pytest.fixture(scope="module")
def r3d() -> nn.Module:
    torch.manual_seed(1)
    return video_models.r3d_18(num_classes=7).eval()


def assert_same_weights(view: ModelView, net: nn.Module) -> None:
    got = view.net.state_dict()
    want = net.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key


def expected_log_probs(net: nn.Module, pre: Preprocess, x: Tensor) -> Tensor:
    """What a view should compute, written out for one clip: crop, normalize, network, log-softmax."""
    frames = x[0]  # (T, C, H, W)
    if isinstance(pre.crop, int):
        frames = torchvision.transforms.functional.center_crop(frames, [pre.crop, pre.crop])
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    clip = ((frames - mean) / std).permute(1, 0, 2, 3).unsqueeze(0)  # (1, C, T, H, W)
    with torch.no_grad():
        return F.log_softmax(net(clip), dim=-1)


def assert_same_outputs(view: ModelView, net: nn.Module) -> None:
    # a tiny crop keeps the forward pass cheap; the network is what is under test here
    view.preprocess = replace(view.preprocess, resize=None, crop=32, num_clips=1)
    plan = view.plan(16)
    x = torch.rand(1, plan.num_sampled, 3, 36, 40)
    with torch.no_grad():
        got = view.bind(plan)(x)
    torch.testing.assert_close(got, expected_log_probs(net, view.preprocess, x), atol=1e-5, rtol=1e-4)


# --- the architecture table ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_preset_matches_torchvision_weights_transforms(name: str) -> None:
    arch = ARCHITECTURES[name]
    weights = arch.pretrained_weights()
    t = weights.transforms()
    pre = arch.preprocess
    resize = tuple(t.resize_size) if len(t.resize_size) == 2 else t.resize_size[0]
    assert pre.resize == resize
    assert pre.crop == t.crop_size[0]
    assert pre.mean == pytest.approx(tuple(t.mean))
    assert pre.std == pytest.approx(tuple(t.std))
    assert pre.clip_len == (32 if name.startswith("swin") else 16)
    assert pre.num_clips == 5 and pre.frame_stride == 1 and pre.layout == "NCTHW"
    assert len(arch.kinetics_labels()) == 400  # shipped in torchvision: no download


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_head_is_where_the_table_says(name: str) -> None:
    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        net = arch.build(7)
    sd = net.state_dict()
    assert arch.num_classes_in(sd) == 7
    head = arch.head_module(net)
    assert isinstance(head, nn.Linear | nn.Conv3d)
    assert head.weight.shape[0] == 7


def test_unknown_architecture_suggests_close_names() -> None:
    with pytest.raises(BadCheckpointError, match=r"unknown architecture 'r3d18' \(did you mean r3d_18"):
        get_architecture("r3d18")
    assert get_architecture("R2Plus1D-18").name == "r2plus1d_18"


# --- round trips -----------------------------------------------------------------------------------------

# swin3d_s/b build in seconds and save hundreds of MB: their table entries are checked above only.
ROUND_TRIP = ["r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t"]


def numbered_net(name: str, num_classes: int) -> nn.Module:
    """A network whose i-th state-dict tensor is filled with i: a misplaced or missing tensor shows, and
    it skips torchvision's initialisers and the random generator (seconds for MViT and Swin)."""
    with torch.device("meta"):
        net = ARCHITECTURES[name].build(num_classes)
    net.to_empty(device="cpu")
    with torch.no_grad():
        for i, t in enumerate(net.state_dict().values()):
            t.fill_(i)
    return net


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_every_architecture_round_trips_a_state_dict(name: str, tmp_path: Path) -> None:
    net = numbered_net(name, 7)
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)

    view = load_model(f"{name}:{path}")

    assert_same_weights(view, net)
    assert view.num_classes == 7
    assert view.labels == [f"class_{i}" for i in range(7)]
    assert view.preprocess == ARCHITECTURES[name].preprocess
    assert view.name == f"{name}:{path}"


def mmaction2(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {f"backbone.{k}": v for k, v in sd.items() if not k.startswith("fc.")}
    out["cls_head.fc_cls.weight"] = sd["fc.weight"]
    out["cls_head.fc_cls.bias"] = sd["fc.bias"]
    return out


WRAPPERS = {
    "state_dict+module": lambda sd: {
        "state_dict": {f"module.{k}": v for k, v in sd.items()},
        "labels": LABELS,
    },
    "orig_mod": lambda sd: {**{f"_orig_mod.{k}": v for k, v in sd.items()}, "classes": LABELS},
    "model_state": lambda sd: {"model_state": sd, "epoch": 3, "categories": LABELS},
    "model+compiled+ddp": lambda sd: {
        "model": {f"_orig_mod.module.{k}": v for k, v in sd.items()},
        "labels": LABELS,
    },
    "lightning": lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "labels": LABELS},
    "mmaction2": lambda sd: {"meta": {"classes": LABELS}, "state_dict": mmaction2(sd), "labels": LABELS},
    "ema_only": lambda sd: {"model_ema": sd, "labels": dict(enumerate(LABELS))},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_checkpoint_wrappers_and_prefixes(wrapper: str, mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(WRAPPERS[wrapper](mc3.state_dict()), path)

    view = load_model(f"mc3_18:{path}")

    assert_same_weights(view, mc3)
    assert view.labels == LABELS


def test_plain_path_recognises_the_architecture(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(mc3.state_dict(), path)

    view = load_model(str(path))

    assert view.source.startswith("mc3_18 ")
    assert any("recognised" in note for note in view.notes)
    assert_same_weights(view, mc3)
    assert view.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not view.net.training
    assert not any(p.requires_grad for p in view.net.parameters())


def test_safetensors_with_arch_argument_matches_original_outputs(r3d: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "r3d.safetensors"
    save_file(r3d.state_dict(), str(path))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS) + "\n")

    view = load_model(str(path), arch="r3d_18", labels=tmp_path / "labels.txt")

    assert_same_weights(view, r3d)
    assert view.labels == LABELS
    assert_same_outputs(view, r3d)


def test_safetensors_metadata_names_arch_labels_and_preprocess(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "mc3.safetensors"
    metadata = {"arch": "mc3_18", "labels": json.dumps(LABELS), "preprocess": json.dumps({"num_clips": 3})}
    save_file(mc3.state_dict(), str(path), metadata=metadata)

    view = load_model(str(path))

    assert view.labels == LABELS
    assert view.preprocess == replace(ARCHITECTURES["mc3_18"].preprocess, num_clips=3)
    assert_same_outputs(view, mc3)


def test_real_preset_feeds_the_network_torchvision_style_clips(r3d: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "r3d.pth"
    torch.save(r3d.state_dict(), path)
    view = load_model(f"r3d_18:{path}")
    plan = view.plan(16)
    x = torch.rand(1, plan.num_sampled, 3, 30, 40)
    seen: list[Tensor] = []
    hook = view.net.register_forward_pre_hook(lambda module, args: seen.append(args[0]))

    with torch.no_grad():
        view.bind(plan)(x)
    hook.remove()

    # exactly 128 x 171, centre 112 x 112, Kinetics mean/std, (N, C, T, H, W): torchvision's recipe
    frames = F.interpolate(x[0], size=(128, 171), mode="bilinear", align_corners=False, antialias=True)
    frames = torchvision.transforms.functional.center_crop(frames, [112, 112])  # columns 30..141
    mean = torch.tensor([0.43216, 0.394666, 0.37645]).view(1, 3, 1, 1)
    std = torch.tensor([0.22803, 0.22145, 0.216989]).view(1, 3, 1, 1)
    want = ((frames - mean) / std).permute(1, 0, 2, 3).unsqueeze(0)
    torch.testing.assert_close(seen[0], want, atol=1e-5, rtol=1e-5)


# --- labels ------------------------------------------------------------------------------------------------


def test_labels_file_json_and_list(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(mc3.state_dict(), path)
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))

    assert load_model(f"mc3_18:{path}", labels=tmp_path / "labels.json").labels == LABELS
    assert load_model(f"mc3_18:{path}", labels=list("abcdefg")).labels == list("abcdefg")


def test_labels_file_with_wrong_count(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(mc3.state_dict(), path)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")

    with pytest.raises(BadCheckpointError, match=r"expected 7 labels .* got 3 from --labels"):
        load_model(f"mc3_18:{path}", labels=tmp_path / "labels.txt")


def test_400_outputs_get_kinetics_names(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = video_models.mc3_18(num_classes=400)
    path = tmp_path / "k400.pth"
    torch.save(net.state_dict(), path)

    view = load_model(f"mc3_18:{path}")

    assert view.labels == video_models.MC3_18_Weights.KINETICS400_V1.meta["categories"]


# --- TorchScript and pickled modules -------------------------------------------------------------------


def script(net: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, still shipped
        return torch.jit.script(net)


def test_torchscript_round_trip_with_sidecar(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "mc3.ts"
    script(mc3).save(str(path))
    sidecar = {"labels": LABELS, "preprocess": {"clip_len": 8, "crop": 96, "num_clips": 2}}
    (tmp_path / "mc3.ts.json").write_text(json.dumps(sidecar))

    view = load_model(str(path))

    assert view.labels == LABELS
    assert view.preprocess.clip_len == 8 and view.preprocess.crop == 96
    assert view.source.startswith("TorchScript")
    assert_same_outputs(view, mc3)


def test_torchscript_with_arch_preset(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "mc3.pt"
    script(mc3).save(str(path))

    view = load_model(str(path), arch="mc3_18")

    assert view.preprocess == ARCHITECTURES["mc3_18"].preprocess
    assert view.num_classes == 7  # from the scripted head, no forward pass needed


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, stride=4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3, 4)))


def test_torchscript_of_unknown_model_counts_classes_and_notes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    script(TinyNet()).save(str(path))

    view = load_model(str(path))

    assert view.num_classes == 5
    assert any("preprocessing unknown" in note for note in view.notes)


def test_pickled_module_needs_trust(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "whole.pth"
    torch.save(mc3, path)

    with pytest.raises(BadCheckpointError, match=r"torchvision\.models\.video\.resnet\.VideoResNet") as info:
        load_model(str(path))
    assert "pass --trust-checkpoint" in str(info.value)

    view = load_model(str(path), trust_checkpoint=True)
    assert_same_weights(view, mc3)
    assert view.num_classes == 7
    assert view.preprocess == ARCHITECTURES["mc3_18"].preprocess  # recognised from VideoResNet
    assert any("full pickle" in note for note in view.notes)


def test_reference_checkpoint_with_python_objects_needs_trust(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": mc3.state_dict(), "args": argparse.Namespace(lr=0.1), "epoch": 4}, path)

    with pytest.raises(BadCheckpointError, match=r"\(argparse\.Namespace\).*--trust-checkpoint"):
        load_model(f"mc3_18:{path}")

    assert_same_weights(load_model(f"mc3_18:{path}", trust_checkpoint=True), mc3)


# --- torchvision pretrained weights ----------------------------------------------------------------------


def test_torchvision_weights_offline_fail_quickly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_network(url: str, timeout: float | None = None) -> None:
        assert timeout is not None, "a download without a timeout hangs for minutes offline"
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    start = time.monotonic()
    with pytest.raises(
        BadCheckpointError, match=r"cannot download torchvision weights for r3d_18 \(offline\?\)"
    ):
        load_model("torchvision:r3d_18")
    assert time.monotonic() - start < 5


def test_torchvision_weights_from_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    weights = video_models.MC3_18_Weights.KINETICS400_V1
    cached = tmp_path / "checkpoints" / weights.url.rsplit("/", 1)[1]
    cached.parent.mkdir()
    torch.manual_seed(4)
    net = video_models.mc3_18(num_classes=400)
    torch.save(net.state_dict(), cached)

    def must_not_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", must_not_download)
    view = load_model("torchvision:mc3_18")

    assert view.labels == weights.meta["categories"]
    assert view.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert_same_weights(view, net)


# --- errors ------------------------------------------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(BadCheckpointError, match=r"no such model or checkpoint file: nope\.pth"):
        load_model("r3d_18:nope.pth")


def test_unknown_arch_in_spec(tmp_path: Path) -> None:
    with pytest.raises(BadCheckpointError, match=r"did you mean mvit_v2_s"):
        load_model(f"mvit_v2:{tmp_path / 'w.pth'}")


def test_truncated_checkpoint(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(mc3.state_dict(), path)
    path.write_bytes(path.read_bytes()[:100_000])

    with pytest.raises(BadCheckpointError, match="corrupt or truncated checkpoint"):
        load_model(f"mc3_18:{path}")


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"fc.weight": torch.zeros(7, 512)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])

    with pytest.raises(BadCheckpointError, match="corrupt or truncated safetensors"):
        load_model(str(path), arch="mc3_18")


def test_text_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")

    with pytest.raises(BadCheckpointError, match="not a PyTorch checkpoint"):
        load_model(f"r3d_18:{path}")


def test_shape_mismatch_names_key_shapes_and_the_fitting_arch(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(mc3.state_dict(), path)

    with pytest.raises(
        BadCheckpointError,
        match=r"does not fit r3d_18: layer2\.0\.conv1\.0\.weight has shape \(128, 64, 1, 3, 3\) in the "
        r"checkpoint, \(128, 64, 3, 3, 3\) in the model.*fits mc3_18",
    ):
        load_model(f"r3d_18:{path}")


def test_missing_weights_are_an_error(mc3: nn.Module, tmp_path: Path) -> None:
    sd = dict(mc3.state_dict())
    del sd["layer4.1.conv2.0.weight"]
    path = tmp_path / "w.pth"
    torch.save(sd, path)

    with pytest.raises(BadCheckpointError, match=r"1 weights missing \(layer4\.1\.conv2\.0\.weight\)"):
        load_model(f"mc3_18:{path}")


def test_unexpected_keys_are_a_note(mc3: nn.Module, tmp_path: Path) -> None:
    sd = {**mc3.state_dict(), "aux_head.weight": torch.zeros(3, 512), "aux_head.bias": torch.zeros(3)}
    path = tmp_path / "w.pth"
    torch.save(sd, path)

    view = load_model(f"mc3_18:{path}")

    assert any(note.startswith("2 checkpoint keys not used by mc3_18: aux_head.") for note in view.notes)


def test_unrecognisable_safetensors_asks_for_arch(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))

    with pytest.raises(BadCheckpointError, match=r"cannot tell the architecture .* pass --arch"):
        load_model(str(path))


def test_num_classes_must_agree(mc3: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(mc3.state_dict(), path)

    with pytest.raises(BadCheckpointError, match="expected 10 classes, got a mc3_18 head with 7"):
        load_model(f"mc3_18:{path}", num_classes=10)


def test_bad_device() -> None:
    with pytest.raises(UsageError, match="expected a torch device"):
        load_model("r3d_18:w.pth", device="gpu-please")


def test_contradictory_arch(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"")
    with pytest.raises(UsageError, match="contradicts"):
        load_model(f"r3d_18:{path}", arch="s3d")


# --- listing and bundled models ------------------------------------------------------------------------


def test_list_models() -> None:
    listing = list_models()
    assert set(listing["architectures"]) == set(ARCHITECTURES)
    r3d = listing["architectures"]["r3d_18"]
    assert r3d["pretrained"] == "R3D_18_Weights.KINETICS400_V1"
    assert r3d["preprocess"]["crop"] == 112
    assert isinstance(listing["bundled"], dict)


def test_default_is_the_bundled_model() -> None:
    bundled = pytest.importorskip("vidattack.models.bundled")
    if not bundled.weights_path(bundled.DEFAULT_MODEL).is_file():
        pytest.skip("bundled weights not trained yet (scripts/train_bundled.py)")
    view = load_model(None)
    assert view.num_classes > 0
    assert not any(p.requires_grad for p in view.net.parameters())
    assert load_model(bundled.DEFAULT_MODEL).labels == view.labels


# -- special files where a checkpoint or a labels file is expected ---------------------------------


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_labels_file_that_never_ends_is_refused_before_it_is_read(special: str, tmp_path: Path) -> None:
    import os

    path = Path(special)
    if special == "fifo":
        path = tmp_path / "labels.txt"
        os.mkfifo(path)  # opening it would block until a writer came
    kind = "a character device" if special == "/dev/zero" else "a FIFO"
    with pytest.raises(BadCheckpointError, match=f"labels file {path} is {kind}, not a regular file"):
        load_model("tiny-c3d", labels=path)


def test_a_huge_labels_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    from vidattack.models.labels import MAX_LABELS_BYTES

    path = tmp_path / "labels.txt"
    with path.open("wb") as fh:
        fh.truncate(MAX_LABELS_BYTES + 1)  # sparse: no disk used
    with pytest.raises(BadCheckpointError, match=r"labels\.txt is larger than 16 MiB"):
        load_model("tiny-c3d", labels=path)


def test_a_device_is_not_called_a_directory() -> None:
    with pytest.raises(
        BadCheckpointError, match="expected a checkpoint file, got a character device: /dev/zero"
    ):
        load_model("/dev/zero")
