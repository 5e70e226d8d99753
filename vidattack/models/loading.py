"""Turn a model specification into a `ModelView`: bundled models, torchvision architectures with a
checkpoint file, TorchScript archives, torchvision's pretrained weights and (only when trusted) pickled
modules.

Specifications (`load_model(spec, ...)`, the CLI's `--model`):

- `None` / `""`: the default bundled model; a bundled name (`tiny-c3d`): that model.
- `ARCH:PATH` (`r3d_18:weights.pth`) or `PATH` with `arch=`: a torchvision architecture built with
  `weights=None` and loaded from a state dict (`.pth`/`.pt`/`.bin` through `torch.load(weights_only=True)`,
  `.safetensors` through safetensors). A plain `PATH` also works when the checkpoint names its
  architecture (an `arch` entry or safetensors metadata) or its keys and shapes match exactly one.
- `PATH` of a TorchScript archive: `torch.jit.load`, preprocessing from `arch=`, from metadata, or a
  default (with a note).
- `torchvision:ARCH`: torchvision's Kinetics-400 weights, from the torch hub cache or downloaded once.
- A pickled whole module or a checkpoint holding Python objects is refused unless `trust_checkpoint`.

Checkpoint metadata (`labels`/`classes`/`categories`, `arch`, `preprocess`) comes from the wrapper dict,
safetensors metadata (JSON strings), TorchScript extra file `vidattack.json`, or a sidecar JSON file
`PATH.json` (or `PATH` with its suffix replaced by `.json`); the sidecar wins over embedded metadata,
explicit arguments win over both.

State dicts are unwrapped (`state_dict`, `model_state_dict`, `model_state`, `model`, `module`, `net`,
then `state_dict_ema`, `model_ema`: the plain weights first, as timm does) and their keys mapped to
torchvision's names:

- `module.` (DataParallel) and `_orig_mod.` (torch.compile) are removed from the start of every key;
- mmaction2's layout: `backbone.` is removed and `cls_head.fc_cls.{weight,bias}` becomes the head
  (reshaped to S3D's 1x1x1 convolution where needed); other `cls_head.` keys stay unexpected;
- a prefix shared by every key (Lightning's `model.`, `net.`...) is removed when that makes the keys
  match the architecture.

Then every weight of the architecture must be present with the right shape: a missing weight or a shape
mismatch is an error (a network with random layers is not what anyone asked for); keys the architecture
does not have are ignored with a note in `ModelView.notes`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import pickle
import re
import socket
import struct
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError, UsageError
from vidattack.models.architectures import (
    ARCHITECTURES,
    BY_MODULE_CLASS,
    Architecture,
    get_architecture,
)
from vidattack.models.view import ModelView, Preprocess

log = logging.getLogger(__name__)

#: Preprocessing for a TorchScript or pickled module whose architecture is unknown: a 3D-CNN-sized clip
#: in [0, 1] without normalisation. Reported in the view's notes, since it is a guess.
DEFAULT_PREPROCESS = Preprocess(clip_len=16, num_clips=1, resize=128, crop=112)

WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model_state",
    "model",
    "module",
    "net",
    "state_dict_ema",
    "model_ema",
)
_LABEL_KEYS = ("labels", "classes", "categories", "class_names")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")
_TORCHSCRIPT_EXTRA = "vidattack.json"
_DOWNLOAD_TIMEOUT_S = 15.0
_HASH_CHUNK = 1 << 20
_SHOWN = 5  # how many key names an error or note lists


def load_model(
    spec: str | None = None,
    *,
    arch: str | None = None,
    labels: str | Path | Sequence[str] | None = None,
    trust_checkpoint: bool = False,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
) -> ModelView:
    """Load the classifier `spec` names, ready for attacks: eval mode, frozen, on `device`.

    Args:
        spec: a bundled name, `ARCH:PATH`, `PATH`, or `torchvision:ARCH` (see the module docstring);
            `None` or `""` is the default bundled model.
        arch: the torchvision architecture of a `PATH` (`--arch`), or the preprocessing preset of a
            TorchScript or pickled module.
        labels: class names: a file (one per line, or a JSON list) or a list; overrides the checkpoint's.
        trust_checkpoint: allow full pickle loading of checkpoints that hold Python objects. Only for
            files you trust: unpickling can run arbitrary code.
        device: where the network goes.
        num_classes: the expected class count; an error if the checkpoint disagrees.

    Raises:
        BadCheckpointError: the model cannot be loaded; the message says why in one line.
        UsageError: contradictory arguments.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UsageError(f"expected a torch device such as cpu or cuda:0, got {device!r}") from e
    if num_classes is not None and num_classes < 1:
        raise UsageError(f"expected a positive number of classes, got {num_classes}")
    label_list = _read_labels_arg(labels) if labels is not None else None
    spec = (spec or "").strip()

    bundled = _bundled_module()
    default_name = getattr(bundled, "DEFAULT_MODEL", None) if bundled else None
    if not spec or (bundled is not None and spec in bundled.bundled_names()):
        if arch is not None:
            raise UsageError("--arch applies to checkpoint files, not to bundled models")
        if bundled is None or not default_name:
            raise BadCheckpointError("no bundled models in this installation: pass ARCH:PATH or a file")
        view = bundled.load_bundled(spec or default_name)
        if label_list is not None:
            view.labels = _fit_labels(label_list, view.num_classes, "--labels")
        _check_num_classes(num_classes, view.num_classes, spec or default_name)
        return _finish(view, dev)

    req = _Request(arch=arch, labels=label_list, trust=trust_checkpoint, num_classes=num_classes)
    if spec.lower().startswith("torchvision:"):
        if arch is not None:
            raise UsageError("--arch does not apply to torchvision:ARCH, which names its architecture")
        view = _load_torchvision(spec, spec.split(":", 1)[1], req)
        return _finish(view, dev)

    path_text = spec
    if not Path(spec).expanduser().exists():
        match = re.fullmatch(r"([A-Za-z][\w.+-]+):(.+)", spec)
        if match:
            spec_arch = get_architecture(match.group(1)).name
            if arch is not None and get_architecture(arch).name != spec_arch:
                raise UsageError(f"--arch {arch} contradicts the architecture {spec_arch} in {spec!r}")
            req.arch, path_text = spec_arch, match.group(2)
    path = Path(path_text).expanduser()
    if not path.exists():
        raise BadCheckpointError(
            f"no such model or checkpoint file: {path_text}{_bundled_hint(spec, bundled)}"
        )
    if not path.is_file():
        raise BadCheckpointError(f"expected a checkpoint file, got a directory: {path}")
    return _finish(_load_file(spec, path, req), dev)


def list_models() -> dict[str, Any]:
    """What `vidattack models` shows: bundled models (name -> description) and the architectures
    (name -> preprocessing, pretrained weights, description)."""
    bundled = _bundled_module()
    return {
        "bundled": dict(bundled.BUNDLED) if bundled is not None else {},
        "architectures": {
            name: {
                "description": a.description,
                "preprocess": a.preprocess.to_dict(),
                "pretrained": a.weights,
                "spec": f"{name}:PATH or torchvision:{name}",
            }
            for name, a in ARCHITECTURES.items()
        },
    }


# --- requests and results ---------------------------------------------------------------------------


@dataclass
class _Request:
    arch: str | None
    labels: list[str] | None
    trust: bool
    num_classes: int | None


@dataclass
class _Meta:
    """What a checkpoint says about itself besides its weights."""

    arch: str | None = None
    labels: list[str] | None = None
    labels_from: str = ""
    preprocess: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def absorb(self, d: Mapping[str, Any], where: str, *, override: bool = False) -> None:
        """Take `arch`, labels and `preprocess` from `d`; earlier values win unless `override`."""
        arch = d.get("arch")
        if isinstance(arch, str) and (override or self.arch is None):
            self.arch = arch
        for key in _LABEL_KEYS:
            # a tensor under such a name is a weight of a plain state dict, not metadata
            if key in d and not isinstance(d[key], Tensor) and (override or self.labels is None):
                self.labels = _labels_from_obj(d[key], f"{where} ({key!r})")
                self.labels_from = where
                break
        pre = d.get("preprocess")
        if isinstance(pre, str):
            pre = _json_loads(pre, f"{where} ('preprocess')")
        if pre is not None and (override or self.preprocess is None):
            if not isinstance(pre, Mapping):
                raise BadCheckpointError(f"expected a preprocess object in {where}, got {type(pre).__name__}")
            self.preprocess = dict(pre)


# --- files -------------------------------------------------------------------------------------------


def _load_file(spec: str, path: Path, req: _Request) -> ModelView:
    digest = _sha256(path)
    kind = _sniff(path)
    meta = _Meta()
    if kind == "safetensors":
        sd, st_meta = _read_safetensors(path)
        meta.absorb(st_meta, f"safetensors metadata of {path.name}")
        meta.absorb(_sidecar(path), "sidecar JSON", override=True)
        return _from_state_dict(spec, path, digest, sd, meta, req, what="safetensors")
    if kind == "torchscript":
        return _from_torchscript(spec, path, digest, req)
    if kind not in ("zip", "pickle"):
        raise BadCheckpointError(f"not a PyTorch checkpoint, TorchScript or safetensors file: {path}")

    obj, unsafe = _torch_load(path, req.trust)
    if unsafe:
        meta.notes.append(f"loaded with full pickle (--trust-checkpoint): {', '.join(unsafe[:_SHOWN])}")
    module, sd = _unwrap(obj, meta, path)
    meta.absorb(_sidecar(path), "sidecar JSON", override=True)
    if module is not None:
        return _from_module(spec, path, digest, module, meta, req)
    return _from_state_dict(spec, path, digest, sd, meta, req, what="state dict")


def _sniff(path: Path) -> str:
    """`zip` (torch.save), `torchscript`, `pickle` (legacy torch.save), `safetensors` or `other`."""
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "zip"  # truncated: torch.load reports it
        # TorchScript archives hold their code and constants; torch.save archives only data.pkl.
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return "torchscript"
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len < path.stat().st_size:
            return "safetensors"
    return "other"


def _torch_load(path: Path, trust: bool) -> tuple[Any, list[str]]:
    """The unpickled checkpoint, and the unsafe globals it needed (empty when loaded safely)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path, e)
        if not unsafe:
            raise BadCheckpointError(f"corrupt checkpoint {path}: {_weights_only_reason(e)}") from e
        if not trust:
            shown = ", ".join(unsafe[:_SHOWN]) + (
                f" and {len(unsafe) - _SHOWN} more" if len(unsafe) > _SHOWN else ""
            )
            raise BadCheckpointError(
                f"{path} holds Python objects besides tensors ({shown}): pass --trust-checkpoint to load "
                "it with full pickle (only for files you trust)"
            ) from e
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise BadCheckpointError(f"corrupt or truncated checkpoint {path}: {_first_line(e)}") from e
    # Trusted by the caller, and only after the safe load failed: full pickle, said in the notes.
    try:
        return torch.load(path, map_location="cpu", weights_only=False), unsafe
    except Exception as e:  # arbitrary unpickling can raise anything (missing modules, ...)
        raise BadCheckpointError(f"cannot unpickle {path}: {type(e).__name__}: {_first_line(e)}") from e


def _unsafe_globals(path: Path, error: pickle.UnpicklingError) -> list[str]:
    """The Python globals a checkpoint needs beyond tensors (empty: it failed for another reason)."""
    try:
        # torch's own classes last: the others say what the file is (a VideoResNet, argparse args)
        found = sorted(
            torch.serialization.get_unsafe_globals_in_checkpoint(path),
            key=lambda g: (g.startswith("torch."), g),
        )
    except (ValueError, RuntimeError, OSError, pickle.UnpicklingError):
        found = []  # legacy (non-zip) files cannot be scanned: fall back on the error message
    return found or re.findall(r"GLOBAL ([\w.]+)", str(error))[:1]


def _weights_only_reason(e: pickle.UnpicklingError) -> str:
    # torch's message is a page of advice; the cause is on the "WeightsUnpickler error:" line.
    match = re.search(r"WeightsUnpickler error: (.*)", str(e))
    return match.group(1).strip() if match else _first_line(e)


def _unwrap(obj: Any, meta: _Meta, path: Path) -> tuple[nn.Module | None, dict[str, Tensor]]:
    """Descend through checkpoint wrappers to the weights, collecting metadata on the way.

    Returns a module when the checkpoint holds one (only possible when trusted), else the state dict.
    """
    trail: list[str] = []
    while True:
        if isinstance(obj, nn.Module):
            return obj, {}
        if not isinstance(obj, Mapping):
            where = "".join(f"[{k!r}]" for k in trail)
            raise BadCheckpointError(f"expected a state dict in {path}{where}, got {type(obj).__name__}")
        meta.absorb(obj, f"checkpoint {path.name}")
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next(
            (k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping | nn.Module) and obj.get(k)),
            None,
        )
        if inner is None:
            break
        trail.append(inner)
        obj = obj[inner]
    sd = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not sd:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise BadCheckpointError(f"no weights found in {path} (keys: {keys or 'none'})")
    if trail:
        meta.notes.append(f"weights taken from {''.join(f'[{k!r}]' for k in trail)}")
    return None, sd


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw_meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
    except (SafetensorError, OSError) as e:
        raise BadCheckpointError(f"corrupt or truncated safetensors file {path}: {_first_line(e)}") from e
    # safetensors metadata values are strings: JSON-decode the structured ones.
    meta: dict[str, Any] = dict(raw_meta)
    for key in (*_LABEL_KEYS, "preprocess"):
        if key in meta:
            meta[key] = _json_loads(meta[key], f"safetensors metadata {key!r} of {path.name}")
    return sd, meta


def _sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            data = _json_loads(candidate.read_text(encoding="utf-8"), f"sidecar {candidate}")
            if not isinstance(data, dict):
                raise BadCheckpointError(f"expected a JSON object in {candidate}, got {type(data).__name__}")
            return data
    return {}


# --- state dicts -------------------------------------------------------------------------------------


def _from_state_dict(
    spec: str,
    path: Path | None,
    digest: str | None,
    sd: dict[str, Tensor],
    meta: _Meta,
    req: _Request,
    *,
    what: str,
    source: str | None = None,
) -> ModelView:
    notes = list(meta.notes)
    sd = _strip_prefixes(sd, notes)
    arch_name = req.arch or meta.arch
    if arch_name is not None:
        arch = get_architecture(arch_name)
    else:
        arch = _detect_architecture(sd, path)
        notes.append(f"architecture {arch.name} recognised from the checkpoint's keys and shapes")
    sd = _fit_keys(sd, arch, notes)

    k = arch.num_classes_in(sd)
    if k is not None and req.num_classes is not None and k != req.num_classes:
        raise BadCheckpointError(
            f"expected {req.num_classes} classes, got a {arch.name} head with {k} outputs in {_name(path)}"
        )
    k = k or req.num_classes or (len(req.labels) if req.labels else None) or 400
    net = _build_loaded(arch, k, sd, path, notes)

    labels = _choose_labels(req, meta, k, arch, notes)
    pre = _preprocess(arch.preprocess, meta, notes)
    return ModelView(
        net=net,
        preprocess=pre,
        labels=labels,
        name=spec,
        sha256=digest,
        source=source or f"{arch.name} {what} from {_name(path)}",
        notes=notes,
    )


def _strip_prefixes(sd: dict[str, Tensor], notes: list[str]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    seen: set[str] = set()
    for key, value in sd.items():
        new = key
        changed = True
        while changed:  # DataParallel inside torch.compile gives `_orig_mod.module.`
            changed = False
            for prefix in _STRIPPED_PREFIXES:
                if new.startswith(prefix):
                    new, changed = new[len(prefix) :], True
                    seen.add(prefix)
        out[new] = value
    if seen:
        notes.append(f"key prefixes removed: {', '.join(sorted(seen))}")
    return out


def _fit_keys(sd: dict[str, Tensor], arch: Architecture, notes: list[str]) -> dict[str, Tensor]:
    """Map mmaction2-style and commonly prefixed keys onto `arch`'s names (see the module docstring)."""
    expected = arch.expected_shapes()
    if any(k.startswith("backbone.") for k in sd):
        mapped: dict[str, Tensor] = {}
        for key, value in sd.items():
            if key.startswith("backbone."):
                mapped[key[len("backbone.") :]] = value
            elif key in ("cls_head.fc_cls.weight", "cls_head.fc_cls.bias"):
                mapped[f"{arch.head}.{key.rsplit('.', 1)[1]}"] = value
            else:
                mapped[key] = value
        notes.append("mmaction2 layout mapped: backbone.* and cls_head.fc_cls.*")
        sd = mapped
    elif not any(k in expected for k in sd):
        first = {k.split(".", 1)[0] for k in sd}
        if len(first) == 1 and all("." in k for k in sd):
            prefix = f"{first.pop()}."
            stripped = {k[len(prefix) :]: v for k, v in sd.items()}
            if any(k in expected for k in stripped):
                notes.append(f"key prefix removed: {prefix}")
                sd = stripped
    head_w = sd.get(arch.head_weight_key)
    want = len(expected.get(arch.head_weight_key, ()))
    if head_w is not None and head_w.dim() == 2 and want == 5:
        # a Linear classifier's weights for S3D's 1x1x1 Conv3d head: same numbers, another shape
        sd = {**sd, arch.head_weight_key: head_w.reshape(*head_w.shape, 1, 1, 1)}
    return sd


def _fitting_architectures(sd: dict[str, Tensor]) -> list[Architecture]:
    """The architectures whose every weight (head aside) the checkpoint has, with the same shape."""
    found: list[Architecture] = []
    for arch in ARCHITECTURES.values():
        fitted = _fit_keys(sd, arch, [])
        heads = (arch.head_weight_key, f"{arch.head}.bias")
        expected = {k: s for k, s in arch.expected_shapes().items() if k not in heads}
        if all(k in fitted and tuple(fitted[k].shape) == s for k, s in expected.items()):
            found.append(arch)
    return found


def _detect_architecture(sd: dict[str, Tensor], path: Path | None) -> Architecture:
    found = _fitting_architectures(sd)
    if len(found) == 1:
        return found[0]
    names = " or ".join(a.name for a in found)
    hint = f" (it fits {names})" if found else ""
    raise BadCheckpointError(
        f"cannot tell the architecture of {_name(path)}{hint}: pass --arch NAME or ARCH:PATH, NAME one of "
        f"{', '.join(ARCHITECTURES)}"
    )


def _build_loaded(
    arch: Architecture, k: int, sd: dict[str, Tensor], path: Path | None, notes: list[str]
) -> nn.Module:
    """`arch` with `k` classes holding the checkpoint's weights; an error if any weight is missing."""
    # Built on the meta device: random initialisation of weights about to be overwritten costs as much
    # as the load itself (seconds for MViT and Swin). The checkpoint's tensors are then assigned.
    with torch.device("meta"):
        net = arch.build(k)
    own = net.state_dict()
    bad = [key for key, v in sd.items() if key in own and tuple(v.shape) != tuple(own[key].shape)]
    if bad:
        key = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BadCheckpointError(
            f"checkpoint {_name(path)} does not fit {arch.name}: {key} has shape {tuple(sd[key].shape)} in "
            f"the checkpoint, {tuple(own[key].shape)} in the model{more}{_other_arch_hint(sd, arch)}"
        )
    # assign=True keeps the checkpoint's dtype, so convert (a half-precision file gives a float model).
    sd = {
        key: v.to(own[key].dtype) if key in own and v.dtype != own[key].dtype else v for key, v in sd.items()
    }
    result = net.load_state_dict(sd, strict=False, assign=True)
    # BatchNorm's batch counter only matters for momentum=None training; old checkpoints lack it.
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    if missing:
        extra = (
            f"; it has {len(unexpected)} keys {arch.name} lacks ({_few(unexpected)})" if unexpected else ""
        )
        raise BadCheckpointError(
            f"checkpoint {_name(path)} does not fit {arch.name}: {len(missing)} weights missing "
            f"({_few(missing)}){extra}{_other_arch_hint(sd, arch)}"
        )
    for module in net.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_meta and name == "num_batches_tracked":
                setattr(module, name, torch.zeros((), dtype=torch.long))
    left = [n for n, t in (*net.named_parameters(), *net.named_buffers()) if t.is_meta]
    if left:
        # cannot happen for the tables' architectures (every tensor is in the state dict); a new one
        # with non-persistent buffers would need a real build
        raise BadCheckpointError(f"{arch.name} has tensors no checkpoint provides: {_few(left)}")
    if unexpected:
        notes.append(f"{len(unexpected)} checkpoint keys not used by {arch.name}: {_few(unexpected)}")
    return net


def _other_arch_hint(sd: dict[str, Tensor], arch: Architecture) -> str:
    others = [a.name for a in _fitting_architectures(sd) if a.name != arch.name]
    return f" (the checkpoint fits {' or '.join(others)})" if others else ""


# --- modules -----------------------------------------------------------------------------------------


def _from_torchscript(spec: str, path: Path, digest: str, req: _Request) -> ModelView:
    extra = {_TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            # deprecated in favour of torch.export, yet the format people ship: not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as e:
        raise BadCheckpointError(f"corrupt TorchScript archive {path}: {_first_line(e)}") from e
    meta = _Meta()
    if extra[_TORCHSCRIPT_EXTRA]:
        embedded = _json_loads(extra[_TORCHSCRIPT_EXTRA], f"{_TORCHSCRIPT_EXTRA} in {path.name}")
        if isinstance(embedded, Mapping):
            meta.absorb(embedded, f"{_TORCHSCRIPT_EXTRA} in {path.name}")
    meta.absorb(_sidecar(path), "sidecar JSON", override=True)
    return _module_view(spec, path, digest, net, meta, req, f"TorchScript archive {path.name}")


def _from_module(spec: str, path: Path, digest: str, net: nn.Module, meta: _Meta, req: _Request) -> ModelView:
    cls = type(net).__name__
    return _module_view(spec, path, digest, net, meta, req, f"pickled {cls} from {path.name} (trusted)")


def _module_view(
    spec: str,
    path: Path,
    digest: str,
    net: nn.Module,
    meta: _Meta,
    req: _Request,
    source: str,
) -> ModelView:
    notes = list(meta.notes)
    arch_name = req.arch or meta.arch
    arch: Architecture | None = get_architecture(arch_name) if arch_name else None
    if arch is None:
        arch = BY_MODULE_CLASS.get(_class_name(net))
        if arch is not None and meta.preprocess is None:
            notes.append(f"preprocessing of {arch.name} (recognised from the class {_class_name(net)})")
    if arch is not None:
        pre = _preprocess(arch.preprocess, meta, notes)
    elif meta.preprocess is not None:
        pre = _preprocess(DEFAULT_PREPROCESS, meta, notes)
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
    labels = _choose_labels(req, meta, k, arch, notes)
    return ModelView(
        net=net, preprocess=pre, labels=labels, name=spec, sha256=digest, source=source, notes=notes
    )


def _head_classes(net: nn.Module, arch: Architecture | None) -> int | None:
    if arch is None or _class_name(net) != arch.module_class:
        return None
    # attribute by attribute: ScriptModules do not support get_submodule
    head: Any = net
    for part in arch.head.split("."):
        head = getattr(head, part, None)
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, Tensor) and weight.dim() >= 2 else None


def _class_name(net: nn.Module) -> str:
    # a scripted module is a RecursiveScriptModule that remembers its Python class's name
    return str(getattr(net, "original_name", type(net).__name__))


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
            f"{_first_line(e)}): pass --arch, --labels, or a PATH.json sidecar"
        ) from e
    if not isinstance(out, Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise BadCheckpointError(f"expected {path} to return logits (1, classes), got {got}")
    return int(out.shape[1])


# --- torchvision pretrained weights ------------------------------------------------------------------


def _load_torchvision(spec: str, name: str, req: _Request) -> ModelView:
    arch = get_architecture(name)
    weights = arch.pretrained_weights()
    filename = os.path.basename(urlparse(weights.url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.is_file():
        _download(weights.url, cached, arch.name)
    meta = _Meta(arch=arch.name, labels=list(weights.meta["categories"]), labels_from=str(weights))
    obj, _ = _torch_load(cached, trust=False)
    _, sd = _unwrap(obj, meta, cached)
    return _from_state_dict(
        spec,
        cached,
        _sha256(cached),
        sd,
        meta,
        _Request(arch=arch.name, labels=req.labels, trust=False, num_classes=req.num_classes),
        what="weights",
        source=f"torchvision {weights} (Kinetics-400)",
    )


def _download(url: str, dst: Path, arch: str) -> None:
    match = torch.hub.HASH_REGEX.search(dst.name)
    log.info("downloading %s to %s", url, dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            torch.hub.download_url_to_file(
                url, str(dst), hash_prefix=match.group(1) if match else None, progress=False
            )
    except (OSError, RuntimeError, ValueError) as e:
        raise BadCheckpointError(
            f"cannot download torchvision weights for {arch} (offline?): {_first_line(e)}; download them "
            f"once ({url} into {dst.parent}) or pass ARCH:PATH"
        ) from e


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # urllib has no timeout by default: an unreachable host would hang the command for minutes.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


# --- bundled models ----------------------------------------------------------------------------------


def _bundled_module() -> Any:
    # imported lazily and by name: loading works without the bundled models (and before they exist)
    try:
        return importlib.import_module("vidattack.models.bundled")
    except ModuleNotFoundError as e:
        if e.name != "vidattack.models.bundled":
            raise
        return None


def _bundled_hint(spec: str, bundled: Any) -> str:
    if bundled is None:
        return ""
    import difflib

    close = difflib.get_close_matches(spec, bundled.bundled_names(), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# --- labels, preprocessing, helpers ------------------------------------------------------------------


def _read_labels_arg(labels: str | Path | Sequence[str]) -> list[str]:
    if isinstance(labels, str | Path):
        path = Path(labels).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise BadCheckpointError(f"cannot read labels file {path}: {e.strerror or e}") from e
        if text.lstrip().startswith(("[", "{")):
            return _labels_from_obj(_json_loads(text, f"labels file {path}"), f"labels file {path}")
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [str(label) for label in labels]


def _labels_from_obj(obj: Any, where: str) -> list[str]:
    """Labels from a list, `{index: name}` or `{name: index}` (both seen in Kinetics label files)."""
    if isinstance(obj, list | tuple) and all(isinstance(x, str) for x in obj):
        return list(obj)
    if isinstance(obj, Mapping) and obj:
        if all(isinstance(v, int) for v in obj.values()):
            pairs = sorted((int(v), str(k)) for k, v in obj.items())
        elif all(str(k).isdigit() for k in obj):
            pairs = sorted((int(k), str(v)) for k, v in obj.items())
        else:
            pairs = []
        if pairs and [i for i, _ in pairs] == list(range(len(pairs))):
            return [name for _, name in pairs]
    raise BadCheckpointError(f"expected a list of class names in {where}, got {_short(obj)}")


def _fit_labels(labels: list[str], k: int, where: str) -> list[str]:
    if len(labels) != k:
        raise BadCheckpointError(
            f"expected {k} labels (the model has {k} classes), got {len(labels)} from {where}"
        )
    return labels


def _choose_labels(
    req: _Request, meta: _Meta, k: int, arch: Architecture | None, notes: list[str]
) -> list[str]:
    if req.labels is not None:
        return _fit_labels(req.labels, k, "--labels")
    if meta.labels is not None:
        return _fit_labels(meta.labels, k, meta.labels_from)
    if arch is not None and k == 400:
        notes.append("labels: Kinetics-400 class names (400 outputs, no labels in the checkpoint)")
        return arch.kinetics_labels()
    notes.append(f"no labels found: classes are named class_0 .. class_{k - 1}")
    return [f"class_{i}" for i in range(k)]


def _preprocess(base: Preprocess, meta: _Meta, notes: list[str]) -> Preprocess:
    if not meta.preprocess:
        return base
    try:
        pre = Preprocess.from_dict({**base.to_dict(), **meta.preprocess})
    except (ValueError, TypeError) as e:
        raise BadCheckpointError(f"bad preprocess entry in the checkpoint metadata: {e}") from e
    notes.append("preprocessing from the checkpoint metadata")
    return pre


def _check_num_classes(expected: int | None, got: int, name: str) -> None:
    if expected is not None and expected != got:
        raise BadCheckpointError(f"expected {expected} classes, got {got} from model {name}")


def _finish(view: ModelView, device: torch.device) -> ModelView:
    # Attacks differentiate with respect to the input only: frozen weights save memory and time, and
    # eval mode fixes BatchNorm and dropout so every query sees the same function.
    view.net.eval()
    for p in view.net.parameters():  # not requires_grad_(): ScriptModules lack it
        p.requires_grad_(False)
    try:
        view.net.to(device)
    except (RuntimeError, AssertionError) as e:  # torch asserts when built without CUDA
        raise UsageError(f"cannot use device {device}: {_first_line(e)}") from e
    for note in view.notes:
        log.info("%s: %s", view.name, note)
    return view


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _json_loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadCheckpointError(f"expected JSON in {where}: {e}") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0].strip()


def _few(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (", ..." if len(keys) > _SHOWN else "")


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


def _name(path: Path | None) -> str:
    return str(path) if path is not None else "the checkpoint"
