"""GAT's training terms (Kinfu and Vidal, Sec. 4.3): the denoiser's output kept from the classifier's
forward, the discriminator's step (eq. 11) and the denoiser's GAN loss (eq. 12)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.train.discriminator import Discriminator


@contextlib.contextmanager
def kept_output(module: nn.Module | None) -> Iterator[list[Tensor]]:
    """The outputs `module` gives while the block runs, in a list (nothing kept for None)."""
    kept: list[Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, out: kept.append(out)) if module is not None else None
    try:
        yield kept
    finally:
        if hook is not None:
            hook.remove()


def discriminator_step(disc: Discriminator, opt: torch.optim.Optimizer, real: Tensor, fake: Tensor) -> float:
    """One Adam step of D on eq. 11 for clean clips `real` and the denoiser's `fake` (detached).

    Eq. 11 as printed maximises log D(X) - log D(G(X + delta)), which is unbounded (D(G) -> 0 sends it
    to infinity) and not the discriminator side of eq. 9's GAN. We use the standard GAN discriminator
    objective, max log D(X) + log(1 - D(G(X + delta))) (Goodfellow et al. 2014), which is also what
    APE-GAN's code trains: it pushes D the same way (D(X) up, D(G) down) but is bounded, and written as
    binary cross-entropy on logits (targets 1 for clean, 0 for reconstructed) it is numerically stable.
    Returns the loss (the sum of the two cross-entropies; 2 log 2 ~ 1.386 when D cannot tell them apart).
    """
    real_logit, fake_logit = disc(real), disc(fake)  # (B*K,) each
    loss = F.binary_cross_entropy_with_logits(
        real_logit, torch.ones_like(real_logit)
    ) + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def generator_gan_loss(disc: Discriminator, restored: Tensor) -> Tensor:
    """Eq. 12's GAN term, -log D(G(X + delta)): the non-saturating generator loss, which keeps a strong
    gradient while D still rejects G's output (log(1 - D(G)) would be flat there). D is frozen for
    this forward, so the G/F step's backward leaves D's gradients alone."""
    disc.requires_grad_(False)
    try:
        logit = disc(restored)  # (B*K,)
    finally:
        disc.requires_grad_(True)
    return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))
