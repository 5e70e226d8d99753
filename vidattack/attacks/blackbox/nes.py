"""NES estimation of the gradient with respect to the patch coefficients (V-BAD Algorithm 2).

`population` antithetic Gaussian samples z over the K coefficients of a partition; the black box is
asked about x + sigma * R(z, U), where R applies each coefficient to its patch of the tentative
perturbation `h` as is (entries +-1), so sigma is in pixel units and the paper's 1e-6 is a few float32
ulps per pixel, as in the official code; normalising each patch to unit length (the paper's text) would
only rescale sigma per patch size. Samples are not clipped to [0, 1], as in the official code. The
objective values go through a rank transform (`rank_weights`) and the estimate is g = sum_i w_i z_i.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from vidattack.attacks.blackbox.partitions import Partition

__all__ = ["NesEstimate", "nes_signs", "rank_weights"]

# Float entries of the NES videos built at once (512 MB in float32): pixel-wise NES on large frames
# would otherwise build the whole population in memory.
_MAX_CHUNK_ELEMENTS = 1 << 27

Ask = Callable[[Tensor], Tensor]
"""Asks the black box about videos `(P, T, 3, H, W)`: log-probs `(p, K)`, p < P once the budget ran out."""


def rank_weights(values: Tensor, keeps: Tensor, targeted: bool) -> Tensor:
    """NES rank transform: weight in [0, 1] per sample (higher = better for the attack).

    `values` are the objective (to increase) of each sample; `keeps` says whether the wanted class is
    top-1 (the clean class, untargeted; the target, targeted). Samples that do not keep it are tied at
    the worst rank (targeted: the target was lost) or the best (untargeted: already adversarial), as in
    the official code. Ties share their mean rank.
    """
    fill = -math.inf if targeted else math.inf
    v = torch.where(keeps, values, torch.full_like(values, fill))
    n = v.numel()
    below = (v.view(-1, 1) > v.view(1, -1)).sum(dim=1).to(torch.float64)
    equal = (v.view(-1, 1) == v.view(1, -1)).sum(dim=1).to(torch.float64)
    ranks = below + (equal - 1) / 2
    return (ranks / max(n - 1, 1)).to(values.dtype)


@dataclass
class NesEstimate:
    """The sign of the estimated gradient `(K,)` and how many samples kept the wanted class on top."""

    signs: Tensor
    kept: int


def nes_signs(
    ask: Ask,
    x: Tensor,
    h: Tensor,
    partition: Partition,
    *,
    label: int,
    targeted: bool,
    sigma: float,
    population: int,
    batch_size: int,
    generator: torch.Generator,
) -> NesEstimate | None:
    """NES estimate of the objective's gradient with respect to the coefficients of `partition`.

    `x` `(T, 3, H, W)` is the iterate, `h` the tentative perturbation; the objective is log p(label)
    (targeted) or -log p(label) (untargeted). Samples are asked `batch_size` at a time (fewer for large
    frames). None when the budget ran out before the population was evaluated: a partial estimate is
    dropped rather than trusted.
    """
    dev = x.device
    pairs = population // 2
    per_chunk = max(1, min(batch_size // 2, _MAX_CHUNK_ELEMENTS // (2 * x.numel())))
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev))
    shape = tuple(x.shape)
    values, keeps = [], []
    # The noise comes from a seeded generator twice (to query, then to accumulate), so memory stays at
    # one chunk even for pixel-wise NES on large frames.
    for z in _antithetic_halves(seed, pairs, per_chunk, partition.size, x):
        coeff = torch.cat([z, -z]) * sigma  # (2m, K): +z then -z
        lp = ask(x.unsqueeze(0) + partition.expand(coeff, shape) * h)  # asks about (2m, T, 3, H, W)
        if lp.shape[0] < coeff.shape[0]:
            return None
        values.append(lp[:, label] if targeted else -lp[:, label])
        keeps.append(lp.argmax(dim=1) == label)
    kept = torch.cat(keeps)
    weights = rank_weights(torch.cat(values), kept, targeted)
    estimate = torch.zeros(partition.size, device=dev, dtype=x.dtype)
    at = 0
    for z in _antithetic_halves(seed, pairs, per_chunk, partition.size, x):
        m = z.shape[0]
        w = weights[at : at + 2 * m]
        estimate += ((w[:m] - w[m:]).view(-1, 1) * z).sum(dim=0)
        at += 2 * m
    return NesEstimate(estimate.sign(), int(kept.sum()))


def _antithetic_halves(seed: int, pairs: int, per_chunk: int, size: int, like: Tensor) -> Iterator[Tensor]:
    """The `+z` halves `(m, K)` of the antithetic pairs, `per_chunk` pairs at a time, from `seed`."""
    gen = torch.Generator(device=like.device).manual_seed(seed)
    for first in range(0, pairs, per_chunk):
        m = min(per_chunk, pairs - first)
        yield torch.randn((m, size), generator=gen, device=like.device, dtype=like.dtype)
