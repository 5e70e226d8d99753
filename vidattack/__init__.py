"""vidattack: adversarial attacks against video recognition models, on real video files.

The public API (imported lazily, so `import vidattack` and `vidattack --help` stay fast)::

    import vidattack
    model = vidattack.load_model("tiny-c3d")          # bundled, ARCH:WEIGHTS, TorchScript, torchvision:ARCH
    video = vidattack.load_video("clip.mp4")           # frames (T, H, W, 3) uint8, timestamps, audio info
    attack = vidattack.get_attack("pgd-linf", eps=4/255)
    report = vidattack.perturb_file("clip.mp4", attack, model=model, out_dir="out")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "vidattack.models",
    "list_models": "vidattack.models",
    "ModelView": "vidattack.models.view",
    "BoundModel": "vidattack.models.view",
    "load_video": "vidattack.video",
    "save_video": "vidattack.video",
    "Video": "vidattack.video",
    "get_attack": "vidattack.attacks.registry",
    "attack_names": "vidattack.attacks.registry",
    "register_attack": "vidattack.attacks.registry",
    "Attack": "vidattack.attacks.base",
    "AttackResult": "vidattack.attacks.base",
    "perturb_file": "vidattack.pipeline",
    "predict_file": "vidattack.pipeline",
    "VidattackError": "vidattack.errors",
    "BadVideoError": "vidattack.errors",
    "BadCheckpointError": "vidattack.errors",
    "BadParameterError": "vidattack.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vidattack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
