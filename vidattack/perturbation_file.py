"""The universal perturbation file: a safetensors file with one tensor and string metadata.

    tensor   "perturbation"  (T_p, H_p, W_p, 3) float32, [0, 1] pixel units
    metadata format "vidattack-universal-perturbation/1", shape, frames, model, preprocess, params,
             created, stats (JSON strings)

safetensors holds no code, so a perturbation file from anywhere is safe to open. Attacks never read
files: the CLI loads the file here and hands the tensor to `UniversalAttack`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vidattack.attacks.universal import UniversalPerturbation
from vidattack.errors import BadCheckpointError, BadParameterError, OutputExistsError
from vidattack.files import atomic_path
from vidattack.models.view import Preprocess

FORMAT = "vidattack-universal-perturbation/1"
_TENSOR_KEY = "perturbation"


def metadata(pert: UniversalPerturbation) -> dict[str, str]:
    """The safetensors header metadata (strings only)."""
    t, h, w = pert.shape
    return {
        "format": FORMAT,
        "shape": json.dumps([t, h, w, 3]),
        "frames": json.dumps(pert.frames),
        "model": pert.model,
        "preprocess": json.dumps(pert.preprocess.to_dict() if pert.preprocess else None),
        "params": json.dumps(pert.params),
        "created": pert.created,
        "stats": json.dumps(pert.stats),
    }


def save_perturbation(
    pert: UniversalPerturbation, path: str | os.PathLike[str], *, overwrite: bool = True
) -> Path:
    """Write `pert` to a safetensors file, atomically (temp file and rename); return the path."""
    from safetensors.torch import save_file

    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists (use --overwrite to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {_TENSOR_KEY: pert.delta.detach().float().cpu().contiguous()}
    with atomic_path(p) as tmp:
        save_file(tensors, str(tmp), metadata(pert))
    return p


def load_perturbation(path: str | os.PathLike[str]) -> UniversalPerturbation:
    """Read a file written by `save_perturbation`; a missing, foreign or damaged file raises one clear line."""
    p = Path(path)
    if not p.is_file():
        raise BadParameterError(f"expected a universal perturbation file, got no such file: {p}")
    delta, meta = _read(p)
    try:
        shape = json.loads(meta.get("shape", "null"))
        frames = json.loads(meta.get("frames", "null"))
        pre = json.loads(meta.get("preprocess", "null"))
        params = json.loads(meta.get("params", "{}"))
        stats = json.loads(meta.get("stats", "{}"))
        preprocess = Preprocess.from_dict(pre) if pre else None
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise BadCheckpointError(f"expected valid metadata in {p}, got: {e}") from None
    if list(delta.shape) != shape:
        raise BadCheckpointError(f"expected a perturbation of shape {shape} in {p}, got {list(delta.shape)}")
    if not delta.is_floating_point() or not bool(torch.isfinite(delta).all()):
        raise BadCheckpointError(f"expected finite float perturbation values in {p}, got {delta.dtype}")
    if not isinstance(frames, list) or not all(isinstance(v, int) for v in frames):
        raise BadCheckpointError(f"expected a list of frame numbers in {p}, got {frames!r}")
    try:
        return UniversalPerturbation(
            delta=delta.float(),
            frames=frames,
            model=meta.get("model", ""),
            preprocess=preprocess,
            params=params if isinstance(params, dict) else {},
            created=meta.get("created", ""),
            stats=stats if isinstance(stats, dict) else {},
            source=str(p),
        )
    except BadParameterError as e:
        raise BadCheckpointError(f"{p}: {e}") from None


def _read(p: Path) -> tuple[torch.Tensor, dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            if meta.get("format") != FORMAT or _TENSOR_KEY not in keys:
                raise BadCheckpointError(
                    f"expected a vidattack universal perturbation ({FORMAT}) in {p}, "
                    f"got format {meta.get('format')!r} with tensors {keys[:3]}"
                )
            return f.get_tensor(_TENSOR_KEY), meta
    except (SafetensorError, OSError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BadCheckpointError(f"expected a safetensors perturbation file in {p}, got: {first}") from None
