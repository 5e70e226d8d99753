"""Models given as a folder or an ONNX file: which kind a path is, loading it, and what it holds.

- a HuggingFace folder: `config.json` and `model.safetensors` (`huggingface`);
- an ONNX model: a `.onnx` file, or a folder with `onnx/model.onnx` or `model.onnx` (`onnx`).

A name like `MCG-NJU/videomae-base` that is no local path is refused: nothing is downloaded at run time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vidattack.errors import BadCheckpointError
from vidattack.models.capabilities import Capability, attacks_for
from vidattack.models.checkpoint import LoadRequest
from vidattack.models.huggingface import describe_hf_folder, is_hf_folder, load_hf_folder
from vidattack.models.messages import few
from vidattack.models.view import ModelView

#: Suffixes of model files: a missing path with one of these is a missing file, not a hub name.
MODEL_SUFFIXES = {".pth", ".pt", ".bin", ".safetensors", ".onnx", ".ckpt", ".tar", ".zip", ".json"}
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def is_model_folder_or_onnx(path: Path) -> bool:
    """Whether `load_path` is the loader for `path` (a folder, or a file ending in `.onnx`)."""
    return path.is_dir() or path.suffix.lower() == ".onnx"


def load_path(spec: str, path: Path, req: LoadRequest) -> ModelView:
    """The `ModelView` of a HuggingFace folder, an ONNX folder or an ONNX file."""
    if not path.is_dir():
        return _load_onnx(spec, path, req)
    if is_hf_folder(path):
        return load_hf_folder(spec, path, req)
    onnx_path = _onnx_in(path)
    if onnx_path is not None:
        return _load_onnx(spec, onnx_path, req)
    raise BadCheckpointError(f"expected {_LAYOUTS}, got a folder holding {_contents(path)}: {path}")


def describe_path(path: Path) -> dict[str, Any]:
    """What a model folder or ONNX file holds, for `vidattack models DIR`: its kind, architecture or
    graph, weights, labels, preprocessing, what it offers and the attacks that fit."""
    if path.is_dir() and is_hf_folder(path):
        info = describe_hf_folder(path)
        offers = Capability.GRADIENTS
    else:
        onnx_path = _onnx_in(path) if path.is_dir() else path
        if onnx_path is None or not onnx_path.is_file():
            raise BadCheckpointError(f"expected {_LAYOUTS}, got a folder holding {_contents(path)}: {path}")
        view = _load_onnx(
            str(path), onnx_path, LoadRequest(arch=None, labels=None, trust=False, num_classes=None)
        )
        info = {
            "kind": "onnx",
            "architecture": None,
            "weights": [
                p.name for p in (onnx_path, onnx_path.with_name(onnx_path.name + ".data")) if p.is_file()
            ],
            "needs_trust": False,
            "labels": view.labels,
            "preprocess": view.preprocess.to_dict(),
            "notes": view.notes,
        }
        offers = Capability.SCORES
    return {"path": str(path), **info, "offers": offers.noun, "attacks": attacks_for(offers)}


def hub_hint(text: str) -> str:
    """For a path that does not exist: a hint when it looks like a HuggingFace hub name, else ""."""
    if not _HUB_NAME.fullmatch(text) or Path(text).suffix.lower() in MODEL_SUFFIXES:
        return ""
    return (
        "; a HuggingFace hub name? download the folder first (hf download NAME --local-dir DIR) and "
        "pass --model DIR: vidattack downloads nothing"
    )


_LAYOUTS = (
    "a HuggingFace folder (config.json and model.safetensors) or an ONNX model (FILE.onnx, or a folder "
    "with onnx/model.onnx)"
)


def _onnx_in(folder: Path) -> Path | None:
    from vidattack.models.onnx import onnx_file_in

    return onnx_file_in(folder)


def _load_onnx(spec: str, path: Path, req: LoadRequest) -> ModelView:
    # imported here: the ONNX module is only needed, and numpy-heavy, for ONNX models
    from vidattack.models.onnx import load_onnx

    return load_onnx(spec, path, req)


def _contents(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError as e:
        raise BadCheckpointError(f"cannot list the folder {folder}: {e.strerror}") from e
    return few(names) if names else "nothing"
