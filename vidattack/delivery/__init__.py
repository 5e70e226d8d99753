"""Delivery: playable lossy copies of an attacked video, and attacks that survive them (issue #17).

- `spec`: `CODEC[:crf=N,preset=P]` for `--delivery` and `--robust-to` (`parse_delivery`, `parse_robust_to`).
- `encode`: the delivery file (`write_delivery`) and the same encode in memory (`roundtrip`).
- `colour`: the exact, differentiable RGB -> Y'CbCr 4:2:0 -> RGB path.
- `simulate`: `DeliveryModel`, the model seen through the delivery encode (BPDA + EOT), for attacks;
  `MeteredDeliveryModel`, a deployed model seen through it (each query delivered, then sent).
- `measure`: lossless versus delivered perturbation in 8-bit levels.

Where it is used: `vidattack.pipeline.delivery` (the job's delivery stages: `--delivery` writes and
judges `S.delivery.mp4`/`.webm`, `--robust-to` hands the attack a `DeliveryModel`, black-box attacks
query it so every encode is a counted query), `vidattack.cli.delivery` (the two options) and
`vidattack.eval` (`Config.delivery`, `Config.robust_to`). Measurements: `benchmarks/delivery_table.py`
and `benchmarks/delivery_limits.py`, results and earlier probes in `benchmarks/results/`.

`encode` carries its own small writer (colour conversion with AREA chroma, VUI tags, fast start,
audio copy or re-encode, packet interleaving) because `vidattack.video`'s writer takes neither
encoder nor muxer options; once it does, `write_delivery` can call it and keep only the spec mapping.
"""

from __future__ import annotations

from vidattack.delivery.encode import DeliveryFile, mp4_top_level_boxes, roundtrip, write_delivery
from vidattack.delivery.measure import DeliveryPerturbation, Perturbation, delivery_perturbation, perturbation
from vidattack.delivery.simulate import DEFAULT_SIGMA, DeliveryModel, MeteredDeliveryModel
from vidattack.delivery.spec import DeliverySpec, parse_delivery, parse_robust_to

__all__ = [
    "DEFAULT_SIGMA",
    "DeliveryFile",
    "DeliveryModel",
    "DeliveryPerturbation",
    "DeliverySpec",
    "MeteredDeliveryModel",
    "Perturbation",
    "delivery_perturbation",
    "mp4_top_level_boxes",
    "parse_delivery",
    "parse_robust_to",
    "perturbation",
    "roundtrip",
    "write_delivery",
]
