"""GAT's pre-processor: a small denoiser trained end to end with the classifier (Kinfu and Vidal, Sec.
4.3, eq. 14).

The paper's 3D APE-GAN generator G maps an adversarial video back toward its clean version before the
classifier F sees it; GAT trains G and F together on

    gamma_1 * MSE(G(x + delta), x) + gamma_2 * GAN(G) + CE(F(G(x + delta)), y),
    delta = argmax CE(F(G(x + delta)), y)       (the attack sees the whole pipeline).

Here G is a two-layer residual 3D CNN (x + g(x), g starting at zero so training starts from the
plain classifier). The GAN term is off by default (gamma_2 = 0, `TrainConfig.gamma_gan`;
`vidattack train --gan-weight`): its discriminator (`vidattack.train.discriminator`) adds to the cost
of a CPU-sized run and the paper gives neither gamma_2 nor an ablation separating the term from the MSE.
`DenoisedNet` is G then F as one module, so every command that loads the saved model runs, and
attacks, both; the discriminator is needed only during training and is not part of it.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


class Denoiser(nn.Module):
    """A residual 3D CNN on clips in the classifier's input space: `x + g(x)`, same shape out.

    `layout` is the classifier's (`NCTHW` or `NTCHW`); the convolutions run on `(B, C, T, H, W)`.
    """

    def __init__(self, channels: int = 3, width: int = 8, layout: Literal["NCTHW", "NTCHW"] = "NCTHW"):
        super().__init__()
        self.layout = layout
        # two 3x3x3 layers at full resolution: about 1,300 multiply-adds per voxel with width 8, as much
        # as the tiny classifiers themselves; a deeper G would dominate a CPU training run
        self.body = nn.Sequential(nn.Conv3d(channels, width, 3, padding=1), nn.ReLU(inplace=True))
        self.out = nn.Conv3d(width, channels, 3, padding=1)
        # the residual starts at zero: before training, G is the identity and F sees what it always saw
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # type: ignore[arg-type]  # Conv3d has a bias by default

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "NTCHW":
            x = x.transpose(1, 2)  # (B, C, T, H, W)
        y = x + self.out(self.body(x))
        return y.transpose(1, 2) if self.layout == "NTCHW" else y


class DenoisedNet(nn.Module):
    """`classifier(denoiser(x))`: the GAT model as one network; `frame_logits` passes through."""

    def __init__(self, denoiser: Denoiser, classifier: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier
        if callable(getattr(classifier, "frame_logits", None)):
            # a CNN+RNN classifier's per-step predictions stay visible through the denoiser
            object.__setattr__(self, "frame_logits", lambda x: _frame_logits(self, x))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.denoiser(x))


def _frame_logits(net: DenoisedNet, x: Tensor) -> Tensor:
    return net.classifier.frame_logits(net.denoiser(x))  # type: ignore[operator]
