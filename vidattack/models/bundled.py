"""The tiny models that ship with vidattack, trained on its synthetic motion data set.

They make every command and test work offline: `load_bundled("tiny-c3d")` gives a ready `ModelView`.
The weights are safetensors files in `vidattack/models/weights/`, written by
`scripts/train_bundled.py` (the adversarially trained `tiny-c3d-at-*` by `scripts/train_robust.py`,
fine-tuned from tiny-c3d with `vidattack.train`), which also stores what is needed to rebuild the model in the file's
metadata: the architecture, the labels and the preprocessing.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from vidattack.errors import BadCheckpointError
from vidattack.files import sha256_file
from vidattack.models.trained import TINY_ARCHS
from vidattack.models.view import ModelView, Preprocess, check_labels

DEFAULT_MODEL = "tiny-c3d"

BUNDLED: dict[str, str] = {
    "tiny-c3d": "3D CNN (143k params) on 16x112x112 clips, 10 synthetic motion classes",
    "tiny-lrcn": "per-frame CNN + LSTM (155k params) with per-frame predictions, 10 synthetic motion classes",
    # adversarially fine-tuned from tiny-c3d by scripts/train_robust.py (vidattack.train, Madry AT)
    "tiny-c3d-at-pgd": "tiny-c3d adversarially trained against pgd-linf (eps 4/255, alpha 1/255, 5 steps)",
    "tiny-c3d-at-multav": "tiny-c3d adversarially trained against multav-linf (eps_m 1.04, alpha_m 1.01, 5 steps)",
}

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def bundled_names() -> list[str]:
    """Names of the bundled models, default first."""
    return [DEFAULT_MODEL, *sorted(n for n in BUNDLED if n != DEFAULT_MODEL)]


def weights_path(name: str) -> Path:
    """Where the weights of bundled model `name` live (whether or not they exist)."""
    return WEIGHTS_DIR / f"{name}.safetensors"


def load_bundled(name: str) -> ModelView:
    """Load bundled model `name` (see `BUNDLED`) in eval mode with gradients off for its parameters.

    Raises `BadCheckpointError` if the name is unknown, the weights file is missing (it is made by
    `python scripts/train_bundled.py`) or its metadata do not describe a known architecture.
    """
    if name not in BUNDLED:
        raise BadCheckpointError(f"expected a bundled model ({', '.join(bundled_names())}), got {name!r}")
    path = weights_path(name)
    if not path.is_file():
        raise BadCheckpointError(
            f"bundled weights for {name} are missing ({path}); run python scripts/train_bundled.py"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types and OSError
        raise BadCheckpointError(f"cannot read bundled weights {path}: {exc}") from exc

    arch = meta.get("arch", "")
    if arch not in TINY_ARCHS:
        raise BadCheckpointError(
            f"expected arch {' or '.join(TINY_ARCHS)} in the metadata of {path}, got {arch!r}"
        )
    try:
        labels = json.loads(meta["labels"])
        preprocess = Preprocess.from_dict(json.loads(meta["preprocess"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise BadCheckpointError(f"bad labels or preprocess metadata in {path}: {exc}") from exc
    if not isinstance(labels, list) or not all(isinstance(lab, str) for lab in labels):
        raise BadCheckpointError(f"expected a JSON list of label strings in {path}, got {meta['labels']!r}")

    net = TINY_ARCHS[arch][0](len(labels))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise BadCheckpointError(f"weights in {path} do not fit {arch}: {exc}") from exc
    net.eval()
    net.requires_grad_(False)
    return ModelView(
        net=net,
        preprocess=preprocess,
        labels=check_labels(labels, len(labels), str(path)),
        name=name,
        sha256=sha256_file(path),
        source=f"bundled:{name}",
    )
