"""Two tiny video classifiers, small enough to train and attack on a laptop CPU.

They stand in for the two threat models of the video-attack literature:

- `TinyC3D`, a 3D CNN over the whole clip (the C3D / I3D family), input `(B, 3, T, 112, 112)`;
- `TinyLRCN`, a per-frame 2D CNN feeding an LSTM with a prediction at every time step (the CNN+RNN
  model of Wei et al., "Sparse Adversarial Perturbations for Videos", AAAI 2019), input
  `(B, T, 3, 112, 112)`; its clip prediction is the mean over time of the per-step logits.

Both downsample by 4 in their first layer, which keeps them fast on CPU while the input stays at full
resolution, so attacks still act on every pixel. Neither uses dropout; in eval mode they are
deterministic functions of their input. They are trained by `scripts/train_bundled.py` on
`vidattack.data.synthetic`, whose classes differ only in motion; the design choices below that look
unusual (a zero-sum temporal stem, max pooling, keypoints and feature changes fed to the LSTM) each made training
on that data several times faster on CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _conv3d(
    c_in: int,
    c_out: int,
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    *,
    zero_sum_time: bool = False,
) -> nn.Sequential:
    conv = nn.Conv3d(
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=(kernel[0] // 2, kernel[1] // 2, kernel[2] // 2),
        bias=False,
    )
    if zero_sum_time:
        with torch.no_grad():
            conv.weight -= conv.weight.mean(dim=2, keepdim=True)  # (out, in, t, h, w): zero sum over t
    return nn.Sequential(conv, nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


def _conv2d(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyC3D(nn.Module):
    """A small 3D CNN: `(B, 3, T, H, W)` -> logits `(B, num_classes)`; about 150k parameters.

    The stem's 3x5x5 kernels with spatial stride 4 do most of the downsampling cheaply while still
    seeing motion at full resolution; three 3x3x3 layers follow. Global *max* pooling makes it accept
    any clip length and frame size.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            # The stem starts as temporal-derivative filters (each kernel sums to zero over time):
            # static appearance carries no label information in motion classes, and from the default
            # init the network spends hundreds of steps learning to ignore it.
            _conv3d(3, 16, (3, 5, 5), (1, 4, 4), zero_sum_time=True),  # (B, 16, T, H/4, W/4)
            _conv3d(16, 32, (3, 3, 3), (1, 2, 2)),  # (B, 32, T, H/8, W/8)
            _conv3d(32, 48, (3, 3, 3), (2, 2, 2)),  # (B, 48, T/2, H/16, W/16)
            _conv3d(48, 64, (3, 3, 3), (2, 1, 1)),  # (B, 64, T/4, H/16, W/16)
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits `(B, num_classes)` of clips `(B, 3, T, H, W)`."""
        # Max rather than mean pooling: the moving object covers a small part of the frame, and
        # averaging drowns its features in the background's (training was several times slower).
        return self.head(self.features(x).amax(dim=(2, 3, 4)))


class _Keypoints(nn.Module):
    """Spatial soft-argmax (Levine et al. 2016): for each channel, the expected (x, y) in [-1, 1] under
    a softmax over positions, and the channel's maximum. `(N, C, H, W)` -> `(N, 3C)`."""

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        p = x.flatten(2).softmax(dim=-1).view(n, c, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        return torch.cat([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1), x.amax(dim=(2, 3))], dim=1)


class TinyLRCN(nn.Module):
    """A per-frame CNN, an LSTM over its features, and a linear classifier at every time step.

    `frame_logits` maps `(B, T, 3, H, W)` to per-step logits `(B, T, num_classes)`; `forward` returns
    their mean over time, `(B, num_classes)`. At step t the LSTM reads frame t's features, their change
    since frame t-1 and a learned product of the two, so the prediction at step t depends on frames
    0..t only.

    The CNN ends in spatial soft-argmax keypoints rather than pooled features: the LSTM can only see
    motion as a change of *where* things are, and keypoints say where precisely. The product term is
    there for rotation, whose direction is a cross product of where a point is and how it moved
    (the gated-autoencoder view of motion, Memisevic 2013); an LSTM left to find it through its gates
    did not within a CPU training budget.
    """

    def __init__(self, num_classes: int = 10, hidden: int = 96, gated: int = 32) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            _conv2d(3, 16, 5, 4),  # (B*T, 16, H/4, W/4)
            _conv2d(16, 32, 3, 2),  # (B*T, 32, H/8, W/8)
            nn.Conv2d(32, 32, 3, padding=1),  # (B*T, 32, H/8, W/8); raw scores for the softmax
            _Keypoints(),  # (B*T, 96)
            nn.Linear(96, hidden),
        )
        self.appearance = nn.Linear(hidden, gated)
        self.motion = nn.Linear(hidden, gated)
        self.rnn = nn.LSTM(2 * hidden + gated, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Per-frame CNN features `(B, T, hidden)` of clips `(B, T, 3, H, W)`."""
        if x.dim() != 5:
            raise ValueError(f"expected clips (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t = x.shape[:2]
        return self.cnn(x.flatten(0, 1)).view(b, t, -1)

    def recurrent_logits(self, feats: Tensor) -> Tensor:
        """Per-step logits `(B, T, num_classes)` from per-frame features `(B, T, hidden)`."""
        change = torch.cat([torch.zeros_like(feats[:, :1]), feats[:, 1:] - feats[:, :-1]], dim=1)
        gated = self.appearance(feats) * self.motion(change)  # (B, T, gated)
        out, _ = self.rnn(torch.cat([feats, change, gated], dim=-1))  # (B, T, hidden)
        return self.head(out)

    def frame_logits(self, x: Tensor) -> Tensor:
        """Per-time-step logits `(B, T, num_classes)` of clips `(B, T, 3, H, W)`."""
        return self.recurrent_logits(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        """Clip logits `(B, num_classes)`: the mean over time of `frame_logits`."""
        return self.frame_logits(x).mean(dim=1)
