"""Turn a model specification into a `ModelView`: bundled models, torchvision architectures with a
checkpoint file, TorchScript archives, torchvision's pretrained weights and (only when trusted) pickled
modules. This module only dispatches; each kind of source has its own module.

Specifications (`load_model(spec, ...)`, the CLI's `--model`):

- `None` / `""`: the default bundled model; a bundled name (`tiny-c3d`): that model (`bundled`).
- `ARCH:PATH` (`r3d_18:weights.pth`) or `PATH` with `arch=`: a torchvision architecture built with
  `weights=None` and loaded from a state dict (`.pth`/`.pt`/`.bin` through `torch.load(weights_only=True)`,
  `.safetensors` through safetensors). A plain `PATH` also works when the checkpoint names its
  architecture (an `arch` entry or safetensors metadata) or its keys and shapes match exactly one
  (`checkpoint`, `state_dict`).
- `PATH` of a TorchScript archive: `torch.jit.load`, preprocessing from `arch=`, from metadata, or a
  default (with a note) (`whole_modules`).
- `torchvision:ARCH`: torchvision's Kinetics-400 weights, from the torch hub cache or downloaded once
  (`pretrained`).
- `DIR` of a HuggingFace folder, or `FILE.onnx` / a folder holding `onnx/model.onnx` (`folders`).
- A pickled whole module or a checkpoint holding Python objects is refused unless `trust_checkpoint`.
- `http://...`, `https://...` or `cmd:COMMAND {}`: a deployed model asked by its answers alone
  (`vidattack.remote`), with `remote=` options.

Explicit arguments win over the sidecar JSON, which wins over metadata embedded in the checkpoint.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack import files
from vidattack.errors import BadCheckpointError, UsageError
from vidattack.models.architectures import ARCHITECTURES, get_architecture
from vidattack.models.checkpoint import (
    CheckpointMeta,
    LoadRequest,
    read_safetensors,
    read_sidecar,
    sniff,
    torch_load,
    unwrap,
)
from vidattack.models.folders import hub_hint, is_model_folder_or_onnx, load_path
from vidattack.models.labels import fit_labels, read_labels_arg
from vidattack.models.messages import SHOWN, first_line
from vidattack.models.pretrained import load_torchvision
from vidattack.models.state_dict import view_from_state_dict
from vidattack.models.trained import is_trained_file, load_trained
from vidattack.models.view import ModelView
from vidattack.models.whole_modules import view_from_pickled, view_from_torchscript
from vidattack.remote.transport import is_remote_spec

if TYPE_CHECKING:
    from vidattack.remote.options import RemoteOptions

log = logging.getLogger(__name__)


def load_model(
    spec: str | None = None,
    *,
    arch: str | None = None,
    labels: str | Path | Sequence[str] | None = None,
    trust_checkpoint: bool = False,
    device: str | torch.device = "cpu",
    num_classes: int | None = None,
    remote: RemoteOptions | None = None,
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
        remote: how to talk to an `http(s)://` or `cmd:` model (headers, concurrency, query log...).

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
    label_list = read_labels_arg(labels) if labels is not None else None
    spec = (spec or "").strip()
    if is_remote_spec(spec):
        from vidattack.remote.view import load_remote

        return load_remote(spec, remote, label_list)

    bundled = _bundled_module()
    if not spec or (bundled is not None and spec in bundled.bundled_names()):
        return _finish(_load_bundled(bundled, spec, arch, label_list, num_classes), dev)

    req = LoadRequest(arch=arch, labels=label_list, trust=trust_checkpoint, num_classes=num_classes)
    if spec.lower().startswith("torchvision:"):
        if arch is not None:
            raise UsageError("--arch does not apply to torchvision:ARCH, which names its architecture")
        return _finish(load_torchvision(spec, spec.split(":", 1)[1], req), dev)
    path = _checkpoint_path(spec, req, bundled)
    if is_model_folder_or_onnx(path):  # a HuggingFace folder, an ONNX file or folder
        return _finish(load_path(spec, path, req), dev)
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


def _load_bundled(
    bundled: Any, spec: str, arch: str | None, labels: list[str] | None, num_classes: int | None
) -> ModelView:
    if arch is not None:
        raise UsageError("--arch applies to checkpoint files, not to bundled models")
    default_name = getattr(bundled, "DEFAULT_MODEL", None) if bundled else None
    if bundled is None or not default_name:
        raise BadCheckpointError("no bundled models in this installation: pass ARCH:PATH or a file")
    name = spec or default_name
    view: ModelView = bundled.load_bundled(name)
    if labels is not None:
        view.labels = fit_labels(labels, view.num_classes, "--labels")
    if num_classes is not None and num_classes != view.num_classes:
        raise BadCheckpointError(f"expected {num_classes} classes, got {view.num_classes} from model {name}")
    return view


def _checkpoint_path(spec: str, req: LoadRequest, bundled: Any) -> Path:
    """The file `spec` names; an `ARCH:` prefix (when `spec` is not itself a file) goes to `req.arch`."""
    path_text = spec
    if not Path(spec).expanduser().exists():
        match = re.fullmatch(r"([A-Za-z][\w.+-]+):(.+)", spec)
        if match:
            spec_arch = get_architecture(match.group(1)).name
            if req.arch is not None and get_architecture(req.arch).name != spec_arch:
                raise UsageError(f"--arch {req.arch} contradicts the architecture {spec_arch} in {spec!r}")
            req.arch, path_text = spec_arch, match.group(2)
    path = Path(path_text).expanduser()
    if not path.exists():
        raise BadCheckpointError(
            f"no such model or checkpoint file: {path_text}{_bundled_hint(spec, bundled)}{hub_hint(path_text)}"
        )
    kind = files.file_kind(path.stat().st_mode)
    if kind is not None and not path.is_dir():
        raise BadCheckpointError(f"expected a checkpoint file, got {kind}: {path}")
    return path


def _load_file(spec: str, path: Path, req: LoadRequest) -> ModelView:
    """A checkpoint file of any kind, told by its content rather than its name."""
    digest = files.sha256_file(path)
    kind = sniff(path)
    meta = CheckpointMeta()
    if kind == "safetensors":
        sd, st_meta = read_safetensors(path)
        if is_trained_file(st_meta):  # written by `vidattack train`: a tiny network or one with a denoiser
            return _load_trained(spec, path, digest, sd, st_meta, req)
        meta.absorb(st_meta, f"safetensors metadata of {path.name}")
        meta.absorb(read_sidecar(path), "sidecar JSON", override=True)
        return view_from_state_dict(spec, path, digest, sd, meta, req, what="safetensors")
    if kind == "torchscript":
        return view_from_torchscript(spec, path, digest, req)
    if kind not in ("zip", "pickle"):
        raise BadCheckpointError(f"not a PyTorch checkpoint, TorchScript or safetensors file: {path}")

    obj, unsafe = torch_load(path, req.trust)
    if unsafe:
        meta.notes.append(f"loaded with full pickle (--trust-checkpoint): {', '.join(unsafe[:SHOWN])}")
    module, sd = unwrap(obj, meta, path)
    meta.absorb(read_sidecar(path), "sidecar JSON", override=True)
    if module is not None:
        return view_from_pickled(spec, path, digest, module, meta, req)
    return view_from_state_dict(spec, path, digest, sd, meta, req, what="state dict")


def _load_trained(
    spec: str, path: Path, digest: str, sd: dict[str, torch.Tensor], st_meta: dict[str, Any], req: LoadRequest
) -> ModelView:
    view = load_trained(spec, path, digest, sd, st_meta, req.labels)
    if req.num_classes is not None and req.num_classes != view.num_classes:
        raise BadCheckpointError(
            f"expected {req.num_classes} classes, got {view.num_classes} from {path.name}"
        )
    return view


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
    names = bundled.bundled_names()
    close = difflib.get_close_matches(spec, names, n=3)
    if close:
        return f" (did you mean {', '.join(close)}?)"
    return f" (bundled models: {', '.join(names)}; `vidattack models` lists every kind)"


def _finish(view: ModelView, device: torch.device) -> ModelView:
    # Attacks differentiate with respect to the input only: frozen weights save memory and time, and
    # eval mode fixes BatchNorm and dropout so every query sees the same function.
    view.net.eval()
    for p in view.net.parameters():  # not requires_grad_(): ScriptModules lack it
        p.requires_grad_(False)
    try:
        view.net.to(device)
    except (RuntimeError, AssertionError) as e:  # torch asserts when built without CUDA
        raise UsageError(f"cannot use device {device}: {first_line(e)}") from e
    for note in view.notes:
        log.info("%s: %s", view.name, note)
    return view
