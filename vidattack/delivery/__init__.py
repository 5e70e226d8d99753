"""Delivery: playable lossy copies of an attacked video, and attacks that survive them (issue #17).

- `spec`: `CODEC[:crf=N,preset=P]` for `--delivery` and `--robust-to` (`parse_delivery`, `parse_robust_to`).
- `encode`: the delivery file (`write_delivery`) and the same encode in memory (`roundtrip`).
- `colour`: the exact, differentiable RGB -> Y'CbCr 4:2:0 -> RGB path.
- `simulate`: `DeliveryModel`, the model seen through the delivery encode (BPDA + EOT), for attacks.
- `measure`: lossless versus delivered perturbation in 8-bit levels.
"""

from __future__ import annotations

from vidattack.delivery.encode import DeliveryFile, mp4_top_level_boxes, roundtrip, write_delivery
from vidattack.delivery.measure import DeliveryPerturbation, Perturbation, delivery_perturbation, perturbation
from vidattack.delivery.simulate import DEFAULT_SIGMA, DeliveryModel
from vidattack.delivery.spec import DeliverySpec, parse_delivery, parse_robust_to

__all__ = [
    "DEFAULT_SIGMA",
    "DeliveryFile",
    "DeliveryModel",
    "DeliveryPerturbation",
    "DeliverySpec",
    "Perturbation",
    "delivery_perturbation",
    "mp4_top_level_boxes",
    "parse_delivery",
    "parse_robust_to",
    "perturbation",
    "roundtrip",
    "write_delivery",
]
