"""GAT's discriminator D: the GAN half of 3D APE-GAN (Kinfu and Vidal, "Analysis and Extensions of
Adversarial Training for Video Classification", CVPRW 2022, Sec. 4.3, eqs. 9-12 and 14).

APE-GAN (Shen, Jin, Gao and Zhang, "APE-GAN: Adversarial Perturbation Elimination with GAN", arXiv
1707.05474, 2017; Jin, Shen et al. at ICASSP 2019, the paper's ref. [18]) trains an image denoiser G
against a DCGAN-style discriminator that tells clean images from G's reconstructions of adversarial
ones; Kinfu and Vidal's 3D APE-GAN makes both networks 3D CNNs on clips. D here is that discriminator at
the size of the bundled tiny models: two strided 3x3x3 convolutions with LeakyReLU (DCGAN's slope 0.2),
a global average pool and one linear unit, so it gives one logit (log-odds of "clean") per clip whatever
the clip's size. APE-GAN's D also has BatchNorm after its inner convolutions; it is left out here
because a GAT batch is a few clips and D sees the clean and the reconstructed clips in separate
forwards, where batch statistics would tell the two apart by themselves.

D only shapes G during training: the saved model holds G and F (`DenoisedNet`), never D.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn


class Discriminator(nn.Module):
    """Clip `(B, C, T, H, W)` (or `(B, T, C, H, W)` for `layout="NTCHW"`) -> logit `(B,)`, high = clean.

    It reads clips in the classifier's input space (normalised, as the denoiser writes them).
    """

    def __init__(self, channels: int = 3, width: int = 8, layout: Literal["NCTHW", "NTCHW"] = "NCTHW"):
        super().__init__()
        self.layout = layout
        self.features = nn.Sequential(
            # stride 2 in time, height and width: each layer sees an eighth of the voxels of the one
            # before, so D costs a small fraction of G, which runs at full resolution
            nn.Conv3d(channels, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(width, 2 * width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.AdaptiveAvgPool3d(1),
        )
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "NTCHW":
            x = x.transpose(1, 2)  # (B, C, T, H, W)
        return self.head(self.features(x).flatten(1)).squeeze(1)  # (B,)


def new_discriminator(*, seed: int, layout: Literal["NCTHW", "NTCHW"] = "NCTHW") -> Discriminator:
    """A `Discriminator` initialised from its own seed, leaving torch's global generator untouched, so
    that turning the GAN term on does not shift the random numbers the rest of training draws."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Discriminator(layout=layout)
