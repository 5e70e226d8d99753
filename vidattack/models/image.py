"""Moved to `vidattack.models.surrogates` (image models used as V-BAD surrogates).

A transitional alias so `vidattack.attacks.vbad` keeps importing while the black-box code is split in
parallel; delete this file once nothing imports `vidattack.models.image`.
"""

from __future__ import annotations

from vidattack.models.surrogates import (
    IMAGENET_WEIGHTS,
    LAYER_ALIASES,
    SURROGATE_NAMES,
    TINY_NAME,
    ImageSurrogate,
    TinyImageCNN,
    load_surrogate,
    load_surrogates,
    load_tiny_image_cnn,
    tiny_weights_path,
)

__all__ = [
    "IMAGENET_WEIGHTS",
    "LAYER_ALIASES",
    "SURROGATE_NAMES",
    "TINY_NAME",
    "ImageSurrogate",
    "TinyImageCNN",
    "load_surrogate",
    "load_surrogates",
    "load_tiny_image_cnn",
    "tiny_weights_path",
]
