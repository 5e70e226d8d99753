"""How much perturbation the delivery copy really carries, in 8-bit levels.

The attack's budget holds on the lossless file; the viewer sees the delivered one. `delivery_perturbation`
puts both side by side for the report:

- `lossless`: lossless adversarial minus clean (what the threat model bounds);
- `delivered`: delivered adversarial minus clean (the issue's "perturbation actually delivered"; it
  includes the codec's own error, which is not adversarial);
- `codec`: delivered clean minus clean, that codec error alone (when the delivered clean video is given);
- `surviving`: delivered adversarial minus delivered clean, the part of the attack that got through
  (when the delivered clean video is given).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["DeliveryPerturbation", "Perturbation", "delivery_perturbation", "perturbation"]

_CHUNK = 32  # frames per step: int16 differences of a few frames, never a float copy of the video


@dataclass(frozen=True)
class Perturbation:
    """Differences between two videos in 8-bit levels (1 = 1/255): the largest (`linf`), the L2 norm
    over the whole video (`l2`) and the mean absolute difference over all pixels and channels (`map`)."""

    linf: int
    l2: float
    map: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perturbation(reference: Tensor, other: Tensor) -> Perturbation:
    """`other - reference` for uint8 frames `(T, H, W, 3)` of the same shape, in /255 levels."""
    if reference.shape != other.shape:
        raise ValueError(
            f"expected frames of the same shape, got {tuple(reference.shape)} and {tuple(other.shape)}"
        )
    if reference.dtype != torch.uint8 or other.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {reference.dtype} and {other.dtype}")
    linf, sq, total = 0, 0.0, 0.0
    for s in range(0, reference.shape[0], _CHUNK):
        d = (other[s : s + _CHUNK].to(torch.int16) - reference[s : s + _CHUNK].to(torch.int16)).abs_()
        if d.numel():
            linf = max(linf, int(d.max()))
            sq += float(d.float().square_().sum(dtype=torch.float64))
            total += float(d.sum(dtype=torch.float64))
    n = reference.numel()
    return Perturbation(linf=linf, l2=math.sqrt(sq), map=total / n if n else 0.0)


@dataclass(frozen=True)
class DeliveryPerturbation:
    """The lossless and the delivered perturbation of one video (see the module docstring)."""

    lossless: Perturbation
    delivered: Perturbation
    codec: Perturbation | None = None
    surviving: Perturbation | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: each part a dict in /255 levels, or None."""
        return {
            "unit": "8-bit levels (1/255)",
            "lossless": self.lossless.to_dict(),
            "delivered": self.delivered.to_dict(),
            "codec": self.codec.to_dict() if self.codec else None,
            "surviving": self.surviving.to_dict() if self.surviving else None,
        }


def delivery_perturbation(
    clean: Tensor, adversarial: Tensor, delivered: Tensor, delivered_clean: Tensor | None = None
) -> DeliveryPerturbation:
    """Measure uint8 frames `(T, H, W, 3)`: the clean video, the lossless adversarial one, its decoded
    delivery copy and, optionally, the decoded delivery copy of the clean video."""
    return DeliveryPerturbation(
        lossless=perturbation(clean, adversarial),
        delivered=perturbation(clean, delivered),
        codec=perturbation(clean, delivered_clean) if delivered_clean is not None else None,
        surviving=perturbation(delivered_clean, delivered) if delivered_clean is not None else None,
    )
