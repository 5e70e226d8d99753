"""Networks `vidattack train` can build, and the safetensors files it writes and reads back.

The format lives with the models (not in `vidattack.train`) because `load_model` reads it: loading a
trained model must not need the training code. `TINY_ARCHS` is the one registry of the bundled tiny
architectures; `vidattack.models.bundled` builds from it too.

A trained model is one safetensors file whose metadata say how to rebuild it, so `load_model(PATH)` and
therefore every command load it:

- `arch`: a bundled tiny architecture (`TinyC3D`, `TinyLRCN`) or a torchvision video architecture;
- `labels`, `preprocess`: as every vidattack checkpoint (JSON strings);
- `denoiser`: present (JSON) when the network is GAT's `DenoisedNet` (denoiser then classifier);
- `training`: the settings it was trained with (JSON; GAT's weights as `gamma_mse` and `gamma_gan`;
  a GAN-trained model's discriminator is not saved, only G and F run at inference); `heldout`: its
  held-out clean and robust accuracies (JSON); `accuracy`: the held-out clean accuracy, as the
  bundled models store it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError
from vidattack.files import atomic_path
from vidattack.models.architectures import ARCHITECTURES, BY_MODULE_CLASS, get_architecture
from vidattack.models.denoiser import DenoisedNet, Denoiser
from vidattack.models.labels import fit_labels
from vidattack.models.tiny import TinyC3D, TinyLRCN
from vidattack.models.view import ModelView, Preprocess

TRAINED_BY = "vidattack train"

# The preprocessing of the bundled tiny models (scripts/train_bundled.py): 16 frames at 112 x 112.
_TINY_PRE = dict(clip_len=16, num_clips=1, resize=112, crop=112, mean=(0.5,) * 3, std=(0.25,) * 3)
TINY_ARCHS: dict[str, tuple[Callable[[int], nn.Module], Preprocess]] = {
    "TinyC3D": (TinyC3D, Preprocess(**_TINY_PRE, layout="NCTHW")),  # type: ignore[arg-type]
    "TinyLRCN": (TinyLRCN, Preprocess(**_TINY_PRE, layout="NTCHW")),  # type: ignore[arg-type]
}
_TINY_ALIASES = {"tiny-c3d": "TinyC3D", "tiny-lrcn": "TinyLRCN", "tinyc3d": "TinyC3D", "tinylrcn": "TinyLRCN"}


def canonical_arch(name: str) -> str:
    """`tiny-c3d` -> `TinyC3D`; torchvision names as `get_architecture` spells them."""
    key = name.strip()
    if key in TINY_ARCHS:
        return key
    if key.lower() in _TINY_ALIASES:
        return _TINY_ALIASES[key.lower()]
    try:
        return get_architecture(key).name
    except BadCheckpointError as e:
        raise BadCheckpointError(f"{e} (or tiny-c3d, tiny-lrcn)") from None


def build_network(arch: str, num_classes: int) -> tuple[nn.Module, Preprocess]:
    """A freshly initialised network of `arch` with `num_classes` outputs, and its preprocessing."""
    name = canonical_arch(arch)
    if name in TINY_ARCHS:
        make, pre = TINY_ARCHS[name]
        return make(num_classes), pre
    a = get_architecture(name)
    net = a.build(num_classes)
    net._vidattack_arch = a.name  # type: ignore[assignment]  # variants share a class: remember which
    return net, a.preprocess


def arch_of(net: nn.Module) -> str:
    """The `arch` metadata of a network (the classifier's, for a `DenoisedNet`)."""
    inner = net.classifier if isinstance(net, DenoisedNet) else net
    cls = type(inner).__name__
    if cls in TINY_ARCHS:
        return cls
    # torchvision variants share a class (r3d_18, mc3_18, r2plus1d_18 are all VideoResNet): the
    # training settings record the exact one; the class's first architecture is only a fallback
    arch = getattr(inner, "_vidattack_arch", None)
    if isinstance(arch, str) and arch in ARCHITECTURES:
        return arch
    if cls in BY_MODULE_CLASS:
        return BY_MODULE_CLASS[cls].name
    raise BadCheckpointError(f"expected a tiny or torchvision video network, got {cls}")


def save_trained(
    net: nn.Module,
    preprocess: Preprocess,
    labels: list[str],
    path: Path,
    *,
    arch: str,
    training: Mapping[str, Any],
    heldout: Mapping[str, Any],
) -> Path:
    """Write `net` with the metadata that rebuild it; atomic, so a half-written file never loads."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {
        "arch": arch,
        "labels": json.dumps(list(labels)),
        "preprocess": json.dumps(preprocess.to_dict()),
        "training": json.dumps(dict(training)),
        "heldout": json.dumps(dict(heldout)),
        "trained_by": TRAINED_BY,
        "torch": torch.__version__,
    }
    if "clean" in heldout:
        metadata["accuracy"] = f"{float(heldout['clean']):.4f}"
    if isinstance(net, DenoisedNet):
        metadata["denoiser"] = json.dumps({"width": net.denoiser.out.in_channels})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def is_trained_file(meta: Mapping[str, Any]) -> bool:
    """Whether safetensors metadata describe a network `load_trained` builds (tiny or with a denoiser)."""
    return meta.get("arch") in TINY_ARCHS or "denoiser" in meta


def load_trained(
    spec: str,
    path: Path,
    digest: str | None,
    state: dict[str, Tensor],
    meta: Mapping[str, Any],
    labels: list[str] | None = None,
) -> ModelView:
    """The `ModelView` of a file `save_trained` wrote (metadata already JSON-decoded where structured)."""
    arch = str(meta.get("arch", ""))
    file_labels = meta.get("labels")
    if not isinstance(file_labels, list) or not all(isinstance(v, str) for v in file_labels):
        raise BadCheckpointError(
            f"expected a JSON list of labels in the metadata of {path}, got {file_labels!r}"
        )
    try:
        net, pre = build_network(arch, len(file_labels))
    except BadCheckpointError as e:
        raise BadCheckpointError(f"{path}: {e}") from None
    pre_meta = meta.get("preprocess")
    if isinstance(pre_meta, dict):
        try:
            pre = Preprocess.from_dict({**pre.to_dict(), **pre_meta})
        except (ValueError, TypeError) as e:
            raise BadCheckpointError(f"bad preprocess metadata in {path}: {e}") from e
    den = meta.get("denoiser")
    if den is not None:
        cfg = json.loads(den) if isinstance(den, str) else den
        net = DenoisedNet(Denoiser(width=int(cfg.get("width", 8)), layout=pre.layout), net)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise BadCheckpointError(f"weights in {path} do not fit {arch}: {first}") from e
    notes = []
    training = meta.get("training")
    if isinstance(training, str):
        notes.append(f"trained by vidattack train: {training}")
    return ModelView(
        net=net,
        preprocess=pre,
        labels=fit_labels(labels, len(file_labels), "--labels") if labels else list(file_labels),
        name=spec,
        sha256=digest,
        source=f"{arch}{' + denoiser' if den is not None else ''} trained model {path.name}",
        notes=notes,
    )


def read_training_metadata(path: Path) -> dict[str, Any]:
    """The `training` and `heldout` metadata of a trained model file or HuggingFace folder (empty dicts
    if absent)."""
    from safetensors import safe_open

    if path.is_dir():
        from vidattack.models.huggingface import read_training_info

        return read_training_info(path)

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: json.loads(meta[k]) if k in meta else {} for k in ("training", "heldout")}
