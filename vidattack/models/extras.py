"""Optional dependencies, imported only by the loaders that need them.

`transformers` (HuggingFace folders) and `onnxruntime` (ONNX files) are extras of the package
(`pip install "vidattack[hf]"`, `"vidattack[onnx]"`): most users attack torchvision models and should not
pay their import time or install size. Without one, the loader stops with a message naming the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vidattack.errors import BadCheckpointError

#: module -> (extra, what it is needed for)
EXTRAS = {
    "transformers": ("hf", "a HuggingFace model folder"),
    "onnxruntime": ("onnx", "an ONNX model"),
}


def import_extra(module: str) -> ModuleType:
    """`import module`, or a `BadCheckpointError` saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # only the module itself missing means "install the extra"; a broken install says what broke
        if getattr(e, "name", None) != module:
            raise BadCheckpointError(f"cannot import {module}: {e}") from e
        extra, what = EXTRAS[module]
        raise BadCheckpointError(
            f"loading {what} needs {module}: pip install 'vidattack[{extra}]' (or pip install {module})"
        ) from e
