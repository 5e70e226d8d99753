"""Checkpoints that hold a whole network rather than weights: TorchScript archives and (only when
trusted) pickled `nn.Module`s.

The network is used as it is; what it cannot tell is found elsewhere: preprocessing from `--arch`,
the metadata, the class of a recognised torchvision network, else `DEFAULT_PREPROCESS` (with a note);
the class count from a recognised head, the labels, or one forward pass on a blank clip.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError
from vidattack.models.architectures import BY_MODULE_CLASS, Architecture, get_architecture
from vidattack.models.checkpoint import CheckpointMeta, LoadRequest, read_sidecar
from vidattack.models.labels import choose_labels
from vidattack.models.messages import first_line, parse_json
from vidattack.models.view import ModelView, Preprocess

#: Preprocessing for a TorchScript or pickled module whose architecture is unknown: a 3D-CNN-sized clip
#: in [0, 1] without normalisation. Reported in the view's notes, since it is a guess.
DEFAULT_PREPROCESS = Preprocess(clip_len=16, num_clips=1, resize=128, crop=112)

#: The extra file of a TorchScript archive that holds vidattack's metadata (JSON).
TORCHSCRIPT_EXTRA = "vidattack.json"


def view_from_torchscript(spec: str, path: Path, digest: str, req: LoadRequest) -> ModelView:
    """The `ModelView` of the TorchScript archive at `path`, with its embedded and sidecar metadata."""
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            # deprecated in favour of torch.export, yet the format people ship: not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as e:
        raise BadCheckpointError(f"corrupt TorchScript archive {path}: {first_line(e)}") from e
    meta = CheckpointMeta()
    if extra[TORCHSCRIPT_EXTRA]:
        where = f"{TORCHSCRIPT_EXTRA} in {path.name}"
        embedded = parse_json(extra[TORCHSCRIPT_EXTRA], where)
        if isinstance(embedded, Mapping):
            meta.absorb(embedded, where)
    meta.absorb(read_sidecar(path), "sidecar JSON", override=True)
    return module_view(spec, path, digest, net, meta, req, f"TorchScript archive {path.name}")


def view_from_pickled(
    spec: str, path: Path, digest: str, net: nn.Module, meta: CheckpointMeta, req: LoadRequest
) -> ModelView:
    """The `ModelView` of a module unpickled (with the caller's trust) from `path`."""
    cls = type(net).__name__
    return module_view(spec, path, digest, net, meta, req, f"pickled {cls} from {path.name} (trusted)")


def module_view(
    spec: str,
    path: Path,
    digest: str,
    net: nn.Module,
    meta: CheckpointMeta,
    req: LoadRequest,
    source: str,
) -> ModelView:
    """A `ModelView` of a ready network: preprocessing, class count and labels found as best we can."""
    notes = list(meta.notes)
    arch_name = req.arch or meta.arch
    arch: Architecture | None = get_architecture(arch_name) if arch_name else None
    if arch is None:
        arch = BY_MODULE_CLASS.get(class_name(net))
        if arch is not None and meta.preprocess is None:
            notes.append(f"preprocessing of {arch.name} (recognised from the class {class_name(net)})")
    if arch is not None:
        pre = meta.preprocess_over(arch.preprocess, notes)
    elif meta.preprocess is not None:
        pre = meta.preprocess_over(DEFAULT_PREPROCESS, notes)
    else:
        pre = DEFAULT_PREPROCESS
        notes.append(
            "preprocessing unknown, using 16 frames, short side 128, centre crop 112, no normalisation: "
            "pass --arch or a PATH.json sidecar with a 'preprocess' entry"
        )

    net.eval()
    k = _head_classes(net, arch) or req.num_classes
    if k is None:
        given = req.labels or meta.labels
        k = len(given) if given else _count_classes(net, pre, path)
    if req.num_classes is not None and k != req.num_classes:
        raise BadCheckpointError(f"expected {req.num_classes} classes, got a model with {k} in {path}")
    labels = choose_labels(req.labels, meta.labels, meta.labels_from, k, arch, notes)
    return ModelView(
        net=net, preprocess=pre, labels=labels, name=spec, sha256=digest, source=source, notes=notes
    )


def class_name(net: nn.Module) -> str:
    """The Python class name of `net`, also for a scripted module (which remembers it)."""
    return str(getattr(net, "original_name", type(net).__name__))


def _head_classes(net: nn.Module, arch: Architecture | None) -> int | None:
    if arch is None or class_name(net) != arch.module_class:
        return None
    # attribute by attribute: ScriptModules do not support get_submodule
    head: Any = net
    for part in arch.head.split("."):
        head = getattr(head, part, None)
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, Tensor) and weight.dim() >= 2 else None


def _count_classes(net: nn.Module, pre: Preprocess, path: Path) -> int:
    """Class count by one forward pass on a blank clip, when nothing else tells it."""
    size = pre.crop or pre.resize or 112
    h, w = (size, size) if isinstance(size, int) else size
    shape = (1, 3, pre.clip_len, h, w) if pre.layout == "NCTHW" else (1, pre.clip_len, 3, h, w)
    try:
        with torch.no_grad():
            out = net(torch.zeros(shape))
    except Exception as e:  # a foreign module can raise anything on an input it does not expect
        raise BadCheckpointError(
            f"cannot run {path} on a {shape} clip to count its classes ({type(e).__name__}: "
            f"{first_line(e)}): pass --arch, --labels, or a PATH.json sidecar"
        ) from e
    if not isinstance(out, Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise BadCheckpointError(f"expected {path} to return logits (1, classes), got {got}")
    return int(out.shape[1])
