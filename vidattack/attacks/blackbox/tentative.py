"""Tentative perturbations `h` `(T, 3, H, W)` of signs (V-BAD Sec. 3.3, eq. 7).

- `transferred`: the sign of the gradient, through image surrogates applied frame by frame, of the MSE
  between their features and a target feature map, summed over the surrogate ensemble (the official
  code's loop reset the loss per model, so only its last model counted). Untargeted: a fresh target
  |N(0, 1)| x `noise_scale` at every call. Targeted: the features of the target-class video's frames
  under a random keep-mask (`keep_prob`) redrawn at every call.
- `static`: all ones (P-BAD, SR-BAD).
- `random`: random signs.

Surrogates: the default is the bundled `tiny-image-cnn` (`vidattack.models.surrogates`), which looks at
frames shrunk to 16 x 16; `resnet50,densenet121,densenet169` is the paper's ImageNet ensemble. The
`layer` setting cuts each at a late convolutional stage by default (tiny: block3, resnet50: layer3,
densenet: denseblock3); the official code used the logits (`layer=logits`), which on the bundled models
needed ~20% more queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor, nn

from vidattack.models.surrogates import ImageSurrogate, load_surrogates

__all__ = ["Tentative", "transferred_perturbation"]

_SURROGATE_CHUNK = 16  # frames per surrogate forward/backward


@lru_cache(maxsize=4)
def _cached_surrogates(spec: str, layer: str, device: str) -> tuple[ImageSurrogate, ...]:
    # a batch of videos, or a table of runs, reuses the loaded ensemble
    return tuple(load_surrogates(spec, layer=layer, device=device))


def _features(model: nn.Module, frames: Tensor) -> Tensor:
    return model(frames).flatten(1)


class Tentative:
    """Makes the sign maps `(T, 3, H, W)` of one kind (`transferred`, `static`, `random`).

    Holds the surrogates (loaded for `transferred` only) and, for a targeted attack, the target
    features set by `set_target`.
    """

    def __init__(
        self,
        kind: str,
        *,
        surrogate: str,
        layer: str,
        keep_prob: float,
        noise_scale: float,
        generator: torch.Generator,
        device: torch.device,
    ) -> None:
        self.kind = kind
        self.gen = generator
        self.keep_prob = keep_prob
        self.noise_scale = noise_scale
        self.models: tuple[ImageSurrogate, ...] = ()
        self.targets: list[Tensor] | None = None
        if kind == "transferred":
            self.models = _cached_surrogates(surrogate, layer, str(device))

    def set_target(self, frames: Tensor | None) -> None:
        """Target-class frames `(T, 3, H, W)` (targeted) or None (untargeted): what the features aim at."""
        if frames is None or not self.models:
            self.targets = None
            return
        with torch.no_grad():
            self.targets = [
                torch.cat([_features(m, c) for c in frames.split(_SURROGATE_CHUNK)]) for m in self.models
            ]

    def __call__(self, frames: Tensor) -> Tensor:
        """The tentative perturbation for the iterate `frames` `(T, 3, H, W)`: entries in {-1, 0, 1}."""
        if self.kind == "static":
            return torch.ones_like(frames)
        if self.kind == "random":
            bits = torch.randint(0, 2, frames.shape, generator=self.gen, device=frames.device)
            return bits.to(frames.dtype) * 2 - 1
        return transferred_perturbation(
            frames,
            self.models,
            generator=self.gen,
            targets=self.targets,
            keep_prob=self.keep_prob,
            noise_scale=self.noise_scale,
        )


def transferred_perturbation(
    frames: Tensor,
    surrogates: Sequence[nn.Module],
    *,
    generator: torch.Generator,
    targets: Sequence[Tensor] | None = None,
    keep_prob: float = 0.9,
    noise_scale: float = 5.0,
) -> Tensor:
    """V-BAD's transferred tentative perturbation (paper eq. 7): signs `(T, 3, H, W)` for frames in [0, 1].

    sign of the gradient of sum_m MSE_m, the mean squared error between surrogate m's features of the
    frames `(T, D_m)` and a target: `targets[m]` (targeted; entries kept with probability `keep_prob`,
    mask redrawn per call, MSE over the kept entries) or a fresh |N(0, 1)| x `noise_scale` (untargeted).
    The ensemble's losses are summed (the official code kept only the last model's).
    """
    grad = torch.zeros_like(frames)
    dev = frames.device
    for k, model in enumerate(surrogates):
        # Frames are independent, so the gradient of the whole-video loss is built chunk by chunk.
        keep: Tensor | None = None
        if targets is not None:
            target = targets[k]
            keep = torch.rand(target.shape, generator=generator, device=dev) < keep_prob
            denom = keep.sum().clamp_min(1).to(frames.dtype)
        start = 0
        for chunk in frames.split(_SURROGATE_CHUNK):
            n = chunk.shape[0]
            leaf = chunk.detach().requires_grad_(True)
            with torch.enable_grad():
                feats = _features(model, leaf)  # (n, D)
                if keep is not None:
                    sl = slice(start, start + n)
                    loss = ((feats - target[sl]).square() * keep[sl]).sum() / denom
                else:
                    noise = torch.randn(feats.shape, generator=generator, device=dev).abs() * noise_scale
                    loss = (feats - noise).square().sum() / (feats[0].numel() * frames.shape[0])
                (g,) = torch.autograd.grad(loss, leaf)
            grad[start : start + n] += g
            start += n
    return grad.sign()
