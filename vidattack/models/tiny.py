"""Two tiny video classifiers, small enough to train and attack on a laptop CPU.

They stand in for the two threat models of the video-attack literature:

- `TinyC3D`, a 3D CNN over the whole clip (the C3D / I3D family), input `(B, 3, T, 112, 112)`;
- `TinyLRCN`, a per-frame 2D CNN feeding an LSTM with a prediction at every time step (the CNN+RNN
  model of Wei et al., "Sparse Adversarial Perturbations for Videos", AAAI 2019), input
  `(B, T, 3, 112, 112)`; its clip prediction is the mean over time of the per-step logits.

Both downsample by 4 in their first layer, which keeps them fast on CPU while the input stays at full
resolution, so attacks still act on every pixel. Neither uses dropout; in eval mode they are
deterministic functions of their input.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv3d(c_in: int, c_out: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


def _conv2d(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyC3D(nn.Module):
    """A small 3D CNN: `(B, 3, T, H, W)` -> logits `(B, num_classes)`; about 130k parameters.

    A spatial-only stem with stride 4 does most of the downsampling cheaply; the 3x3x3 layers after it
    see motion at a quarter of the resolution, where the synthetic objects move 0.4 to 1 pixel per
    frame. Global average pooling makes it accept any clip length and frame size.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv3d(3, 16, (1, 5, 5), (1, 4, 4)),  # (B, 16, T, H/4, W/4)
            _conv3d(16, 32, (3, 3, 3), (1, 2, 2)),  # (B, 32, T, H/8, W/8)
            _conv3d(32, 48, (3, 3, 3), (2, 2, 2)),  # (B, 48, T/2, H/16, W/16)
            _conv3d(48, 64, (3, 3, 3), (2, 1, 1)),  # (B, 64, T/4, H/16, W/16)
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits `(B, num_classes)` of clips `(B, 3, T, H, W)`."""
        return self.head(self.pool(self.features(x)).flatten(1))


class TinyLRCN(nn.Module):
    """A per-frame CNN, an LSTM over its features, and a linear classifier at every time step.

    `frame_logits` maps `(B, T, 3, H, W)` to per-step logits `(B, T, num_classes)`; `forward` returns
    their mean over time, `(B, num_classes)`. The CNN keeps a coarse 4x4 spatial grid of features
    rather than pooling them away, because the LSTM can only see motion as a change of *where* things
    are between frames.
    """

    def __init__(self, num_classes: int = 10, hidden: int = 96) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            _conv2d(3, 16, 5, 4),  # (B*T, 16, H/4, W/4)
            _conv2d(16, 32, 3, 2),  # (B*T, 32, H/8, W/8)
            _conv2d(32, 32, 3, 2),  # (B*T, 32, H/16, W/16)
            nn.AdaptiveAvgPool2d(4),  # (B*T, 32, 4, 4)
            nn.Flatten(),
            nn.Linear(32 * 16, hidden),
            nn.ReLU(inplace=True),
        )
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def frame_logits(self, x: Tensor) -> Tensor:
        """Per-time-step logits `(B, T, num_classes)` of clips `(B, T, 3, H, W)`."""
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        feats = self.cnn(x.flatten(0, 1)).view(b, t, -1)  # (B, T, hidden)
        out, _ = self.rnn(feats)  # (B, T, hidden)
        return self.head(out)

    def forward(self, x: Tensor) -> Tensor:
        """Clip logits `(B, num_classes)`: the mean over time of `frame_logits`."""
        return self.frame_logits(x).mean(dim=1)
