"""Reading a checkpoint file safely: what kind of file it is, its tensors, and what it says about itself.

- Kinds are told by content, not suffix (`sniff`): `torch.save` zip archives, legacy pickles,
  TorchScript archives, safetensors.
- `torch.load` runs with `weights_only=True`; a file that needs Python objects is refused, naming
  them, unless the caller trusts it, and then full pickle is used and said in the notes.
- State dicts are unwrapped from training checkpoints (`state_dict`, `model_state_dict`, `model_state`,
  `model`, `module`, `net`, then `state_dict_ema`, `model_ema`: the plain weights first, as timm does).
- Metadata (`labels`/`classes`/`categories`, `arch`, `preprocess`) comes from the wrapper dict,
  safetensors metadata (JSON strings), TorchScript's extra file `vidattack.json`, or a sidecar JSON file
  `PATH.json` (or `PATH` with its suffix replaced by `.json`); the sidecar wins over embedded metadata.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vidattack.errors import BadCheckpointError
from vidattack.files import file_kind
from vidattack.models.labels import LABEL_KEYS, labels_from_obj
from vidattack.models.messages import SHOWN, few, first_line, parse_json
from vidattack.models.view import Preprocess
from vidattack.text import literal as display_path

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

FileKind = Literal["zip", "torchscript", "pickle", "safetensors", "other"]


@dataclass
class LoadRequest:
    """What the caller asks of a checkpoint; each field wins over what the checkpoint says."""

    arch: str | None
    labels: list[str] | None
    trust: bool
    num_classes: int | None


@dataclass
class CheckpointMeta:
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
        for key in LABEL_KEYS:
            # a tensor under such a name is a weight of a plain state dict, not metadata
            if key in d and not isinstance(d[key], Tensor) and (override or self.labels is None):
                self.labels = labels_from_obj(d[key], f"{where} ({key!r})")
                self.labels_from = where
                break
        pre = d.get("preprocess")
        if isinstance(pre, str):
            pre = parse_json(pre, f"{where} ('preprocess')")
        if pre is not None and (override or self.preprocess is None):
            if not isinstance(pre, Mapping):
                raise BadCheckpointError(f"expected a preprocess object in {where}, got {type(pre).__name__}")
            self.preprocess = dict(pre)

    def preprocess_over(self, base: Preprocess, notes: list[str]) -> Preprocess:
        """`base` with the metadata's `preprocess` entries laid over it (said in `notes`)."""
        if not self.preprocess:
            return base
        try:
            pre = Preprocess.from_dict({**base.to_dict(), **self.preprocess})
        except (ValueError, TypeError) as e:
            raise BadCheckpointError(f"bad preprocess entry in the checkpoint metadata: {e}") from e
        notes.append("preprocessing from the checkpoint metadata")
        return pre


def sniff(path: Path) -> FileKind:
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
    # safetensors before pickle: the header length is little-endian, so its first byte is 0x80 (a
    # pickle's first byte) whenever the length is 128 mod 256
    if len(head) == 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len < path.stat().st_size:
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    return "other"


def torch_load(path: Path, trust: bool) -> tuple[Any, list[str]]:
    """The unpickled checkpoint, and the unsafe globals it needed (empty when loaded safely)."""
    from safetensors import SafetensorError

    try:
        return torch.load(path, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path, e)
        if not unsafe:
            raise BadCheckpointError(f"corrupt checkpoint {path}: {_weights_only_reason(e)}") from e
        if not trust:
            shown = ", ".join(unsafe[:SHOWN]) + (
                f" and {len(unsafe) - SHOWN} more" if len(unsafe) > SHOWN else ""
            )
            raise BadCheckpointError(
                f"{path} holds Python objects besides tensors ({shown}): pass --trust-checkpoint to load "
                "it with full pickle (only for files you trust)"
            ) from e
    except SafetensorError as e:  # torch.load reads a `.safetensors` name as safetensors, whatever it holds
        raise BadCheckpointError(
            f"{path} is named .safetensors but is not a safetensors file ({first_line(e)}); a torch.save "
            "file should end in .pt"
        ) from e
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise BadCheckpointError(f"corrupt or truncated checkpoint {path}: {first_line(e)}") from e
    # Trusted by the caller, and only after the safe load failed: full pickle, said in the notes.
    try:
        return torch.load(path, map_location="cpu", weights_only=False), unsafe
    except Exception as e:  # arbitrary unpickling can raise anything (missing modules, ...)
        raise BadCheckpointError(f"cannot unpickle {path}: {type(e).__name__}: {first_line(e)}") from e


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
    return match.group(1).strip() if match else first_line(e)


def unwrap(obj: Any, meta: CheckpointMeta, path: Path) -> tuple[nn.Module | None, dict[str, Tensor]]:
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


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of a safetensors file and its metadata, structured entries JSON-decoded."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw_meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a Mapping)
    except (SafetensorError, OSError) as e:
        raise BadCheckpointError(f"corrupt or truncated safetensors file {path}: {first_line(e)}") from e
    # safetensors metadata values are strings: JSON-decode the structured ones.
    meta: dict[str, Any] = dict(raw_meta)
    for key in (*LABEL_KEYS, "preprocess"):
        if key in meta:
            meta[key] = parse_json(meta[key], f"safetensors metadata {key!r} of {path.name}")
    return sd, meta


def read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON object of `PATH.json` (or `PATH` with the suffix `.json`) beside a checkpoint, or `{}`."""
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate != path and candidate.is_file():
            data = parse_json(candidate.read_text(encoding="utf-8"), f"sidecar {candidate}")
            if not isinstance(data, dict):
                raise BadCheckpointError(f"expected a JSON object in {candidate}, got {type(data).__name__}")
            return data
    return {}


def check_state_file(path: Path) -> None:
    """Refuse a `train --resume` file that cannot be a training state, before any data is loaded:
    missing, not a regular file, empty, not a zip archive (`torch.save`) or one cut short. Cheap: the
    zip's directory is read, not the tensors. Raises `BadCheckpointError` naming the file."""
    shown = display_path(path)
    try:
        info = os.stat(path)
    except OSError as e:
        raise BadCheckpointError(f"cannot read the training state {shown}: {e.strerror or e}") from None
    kind = file_kind(info.st_mode)
    if kind is not None:
        raise BadCheckpointError(f"the training state {shown} is {kind}, not a file")
    if info.st_size == 0:
        raise BadCheckpointError(f"the training state {shown} is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as zf:
            zf.namelist()
        # reads the pickle's opcodes only (nothing runs): a state holds tensors and plain values
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, pickle.UnpicklingError):
        raise BadCheckpointError(
            f"the training state {shown} is truncated or not one (expected the zip archive train writes)"
        ) from None
    if unsafe:
        raise BadCheckpointError(
            f"the training state {shown} holds Python objects besides tensors ({few(sorted(unsafe))}); "
            "refused: the states train writes hold tensors only"
        )


def read_state(path: Path) -> dict[str, Any]:
    """The training state `train` saved to `path` (tensors and plain values only; never unpickled in
    full). Raises `BadCheckpointError` naming the file."""
    from safetensors import SafetensorError

    check_state_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BadCheckpointError(
            f"the training state {display_path(path)} is refused: {_weights_only_reason(e).split('. ')[0]}"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile, SafetensorError) as e:
        raise BadCheckpointError(
            f"the training state {display_path(path)} is damaged: {first_line(e)}"
        ) from None
    if not isinstance(state, dict):
        raise BadCheckpointError(
            f"expected a training state in {display_path(path)}, got {type(state).__name__}"
        )
    return state
