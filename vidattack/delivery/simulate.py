"""Delivery-aware optimisation: a model wrapper whose input goes through the delivery encode first.

`DeliveryModel(model, spec)` maps a video `x` `(N, T, C, H, W)` in [0, 1] to `model(deliver(x))`, where
`deliver(x)` is what a viewer decodes from the delivery copy of `x`. Any gradient attack given this
wrapper instead of the model optimises the delivered video rather than the lossless one; its threat
model (budget, masks, quantization) still applies to `x`, the lossless output, because the wrapper
changes only what the attack's objective sees.

How `deliver` is built (forward value exact, gradient a principled estimate):

- Exact and differentiable: `colour.yuv420_path`, the RGB -> limited-range Y'CbCr conversion with the
  file's matrix, 2x2-mean 4:2:0 chroma subsampling, nearest chroma upsampling and conversion back.
- Exact in value, estimated in gradient: the lossy rest (8-bit rounding, the codec's transform
  quantization, deblocking, motion compensation). The forward pass runs the REAL encoder and decoder
  (`encode.roundtrip`) on the 8-bit rounded video, and the backward pass treats that residual as the
  identity or as a spatial low-pass: `deliver(x) = g(x) + stopgrad(codec(x) - g(x))` with
  `g = yuv420_path o blur_sigma`. This is BPDA, Backward Pass Differentiable Approximation (Athalye,
  Carlini and Wagner, "Obfuscated Gradients Give a False Sense of Security", ICML 2018, Sec. 4.1):
  the forward pass is the true function, the backward pass that of a differentiable `g` with
  `g(x) ~ codec(x)`. With `sigma=0`, `g` keeps the lossy part as the identity (the straight-through
  estimator, Bengio, Leonard and Courville 2013). The default `sigma=2` models what H.264/VP9 do at
  delivery CRFs, keep low spatial frequencies and quantize the rest away (4x4/8x8 transforms): a
  Gaussian of 2 pixels. Smoothing the gradient this way is also what the translation-invariant
  attack does to get through defences (Dong, Pang, Su and Zhu, "Evading Defenses to Transferable
  Adversarial Examples by Translation-Invariant Attacks", CVPR 2019). Measured on move_left_1,
  still_1 and zoom_in_1 (tiny-c3d, PGD 4/255, 20 steps, h264 crf 23), the clean class's probability
  after the real encode was 0.46 / 0.97 / 0.27 with sigma 0 and 0.03 / 0.39 / 0.02 with sigma 2
  (plain PGD: 0.90 / 0.99 / 0.94); a temporal blur as well made it worse. The model's gradient is
  always taken at the truly delivered frames.
- Expectation over Transformation (Athalye, Engstrom, Ilyas and Kwok, "Synthesizing Robust
  Adversarial Examples", ICML 2018): each forward pass draws, per video, a CRF from the spec's set
  (`--robust-to h264:crf=18-28`) and a frame offset, so the attack fits the whole range rather than
  one encode. The offset encodes that many copies of the first frame before the clip, moving the
  clip's frames through the codec's I/P/B and GOP positions, which is what changes when the sampled
  clip sits in the middle of a longer delivered video. With `samples > 1` the wrapper averages the
  probabilities of several draws per call (EOT's expectation in one forward pass).

Limits: frames the model does not sample are not encoded (motion estimation sees only the sampled
frames, exact when the plan samples the whole video, as for the bundled examples); frames of a
sampled video that are not consecutive (a frame stride, gaps between clips) are encoded as if they
were.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.delivery.colour import yuv420_path
from vidattack.delivery.encode import roundtrip
from vidattack.delivery.spec import DeliverySpec
from vidattack.errors import BadParameterError

__all__ = [
    "DEFAULT_MAX_OFFSET",
    "DEFAULT_SIGMA",
    "DeliveryModel",
    "MeteredDeliveryModel",
    "auto_max_offset",
    "gaussian_blur",
]

# Spatial scale, in pixels of the video, of the low-pass that stands for the codec in the backward pass.
DEFAULT_SIGMA = 2.0

# x264's default GOP has up to 3 consecutive B-frames (bframes=3) between references, so offsets
# 0..7 put each frame in every position of two B-frame runs; a larger range adds nothing but time.
DEFAULT_MAX_OFFSET = 7


def auto_max_offset(model: nn.Module) -> int:
    """0 when the model samples the whole video from frame 0 in order (the delivered video then starts
    with the clip, so there is no phase to randomise), else `DEFAULT_MAX_OFFSET`. Reads `model.plan`
    (a `FramePlan`); without one, assumes the whole video."""
    plan = getattr(model, "plan", None)
    frame_ids = getattr(plan, "frame_ids", None)
    num_frames = getattr(plan, "num_frames", None)
    if frame_ids is None or num_frames is None:
        return 0
    return 0 if tuple(frame_ids) == tuple(range(num_frames)) else DEFAULT_MAX_OFFSET


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of `(..., H, W)` planes (edges replicated); `sigma` in pixels, 0 = none."""
    if sigma <= 0:
        return x
    radius = max(1, round(2 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    h, w = x.shape[-2:]
    planes = x.reshape(-1, 1, h, w)  # (B, 1, H, W)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return planes.reshape(x.shape)


class _Straight(torch.autograd.Function):
    """Forward: the delivered frames. Backward: the gradient of the exact colour path (BPDA)."""

    @staticmethod
    def forward(ctx: Any, smooth: Tensor, delivered: Tensor) -> Tensor:
        return delivered.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class DeliveryModel(nn.Module):
    """`model(deliver(x))`: the model as a viewer of the delivery copy sees it (see the module docstring).

    Arguments:
        model: the model the attack would get, `(N, T, C, H, W)` in [0, 1] -> log-probabilities `(N, K)`
            (a `BoundModel`). Its attributes (`plan`, `num_classes`, `labels`,
            `has_frame_predictions`, ...) stay readable through the wrapper.
        spec: the delivery encode to expect (`parse_robust_to`); each call draws one of its CRFs.
        fps: the video's frame rate, which the encoder is told (default 25).
        generator: seeds the EOT draws (CRF, offset); default a CPU generator seeded with 0.
        max_offset: frame offsets are drawn from 0..max_offset; None (default) = `auto_max_offset`.
        samples: EOT draws per call, their probabilities averaged (default 1: a new draw every step).
        sigma: the backward pass's low-pass, in pixels (default 2; 0 = identity straight-through).
        threads: encoder threads (1, the delivery file's default, so a draw equals the file's encode).

    Input and output are those of `model`; the output's value is exactly the model's prediction of
    the decoded delivery encode of `x` rounded to 8 bits (for the drawn CRF and offset).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: DeliverySpec,
        *,
        fps: float | Fraction = 25,
        generator: torch.Generator | None = None,
        max_offset: int | None = None,
        samples: int = 1,
        sigma: float = DEFAULT_SIGMA,
        threads: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(spec, DeliverySpec):
            raise BadParameterError(f"expected a DeliverySpec, got {type(spec).__name__}")
        if samples < 1:
            raise BadParameterError(f"expected samples >= 1, got {samples}")
        if float(fps) <= 0:
            raise BadParameterError(f"expected fps > 0, got {fps}")
        self.model = model
        self.spec = spec
        self.fps = fps
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.max_offset = auto_max_offset(model) if max_offset is None else int(max_offset)
        if self.max_offset < 0:
            raise BadParameterError(f"expected max_offset >= 0, got {self.max_offset}")
        if sigma < 0:
            raise BadParameterError(f"expected sigma >= 0 (pixels), got {sigma}")
        self.samples = samples
        self.sigma = float(sigma)
        self.threads = threads
        self.draws: list[tuple[int, int]] = []  # (crf, offset) of every encode, for the report
        self.train(getattr(model, "training", False))

    def __getattr__(self, name: str) -> Any:
        # What attacks read from a BoundModel (plan, num_classes, labels...) comes from the wrapped model.
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "metered":
                # a QueryModel asks a metered model through `metered`: forwarded, it would reach the
                # deployed model without the encode (`MeteredDeliveryModel` meters through it)
                raise
            return getattr(self.model, name)

    def draw(self) -> tuple[int, int]:
        """One EOT draw `(crf, offset)` from the seeded generator."""
        crfs = self.spec.crfs
        i = int(torch.randint(len(crfs), (1,), generator=self.generator))
        offset = int(torch.randint(self.max_offset + 1, (1,), generator=self.generator))
        return crfs[i], offset

    def deliver(self, x: Tensor, *, crf: int | None = None, offset: int | None = None) -> Tensor:
        """The delivered video `(N, T, C, H, W)` in [0, 1]: its value is the real codec round trip of
        `x` rounded to 8 bits, its gradient that of the exact colour path after a Gaussian low-pass of
        `sigma` pixels (BPDA). `crf` and `offset` fix the draw; by default each video gets a fresh
        EOT draw."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise BadParameterError(f"expected a video tensor (N, T, 3, H, W), got {tuple(x.shape)}")
        with torch.no_grad():
            frames = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8)  # (N, T, C, H, W)
            frames = frames.permute(0, 1, 3, 4, 2).cpu()  # (N, T, H, W, C)
            coded = []
            for n in range(x.shape[0]):
                drawn = self.draw()
                c, o = (drawn[0] if crf is None else crf), (drawn[1] if offset is None else offset)
                self.draws.append((c, o))
                out = roundtrip(frames[n], self.spec, self.fps, crf=c, offset=o, threads=self.threads)
                coded.append(out)
            delivered = torch.stack(coded).permute(0, 1, 4, 2, 3)  # (N, T, C, H, W) uint8
            delivered = delivered.to(device=x.device, dtype=x.dtype).div_(255.0)
        if not (torch.is_grad_enabled() and x.requires_grad):
            return delivered  # a query: no backward pass, so no colour path to build
        matrix = self.spec.matrix_for(int(x.shape[-2]))
        smooth = yuv420_path(gaussian_blur(x, self.sigma), matrix)  # only its gradient is used
        return _Straight.apply(smooth, delivered)

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities `(N, K)` of the delivered video (the mean probability of `samples` draws)."""
        if self.samples == 1:
            return self.model(self.deliver(x))
        log_p = torch.stack([self.model(self.deliver(x)) for _ in range(self.samples)])  # (S, N, K)
        return torch.logsumexp(log_p, dim=0) - math.log(self.samples)

    def frame_log_probs(self, x: Tensor) -> Tensor:
        """The wrapped model's per-frame log-probabilities `(N, T, K)` of the delivered video."""
        return self.model.frame_log_probs(self.deliver(x))  # type: ignore[operator]


class MeteredDeliveryModel(DeliveryModel):
    """`DeliveryModel` over a deployed model, one whose bound model meters its requests
    (`RemoteBound.metered(x, allowance) -> (log_probs, cost)`; see `vidattack.remote.view`).

    The service is known only by its answers, so there is no gradient to approximate: each query is
    the candidate encoded and decoded locally with a fresh EOT draw (`deliver`), and that delivered
    video is what is sent (losslessly) and answered. `metered` hands the deployed model's own cost on,
    so a `QueryModel` charges every request that reached the service to the budget. One EOT draw per
    query (`samples=1`): averaging several would send several requests for one query, which a
    per-query allowance cannot bound.

    `judged(x)` asks again about `x` delivered with the last draw, the one the template's judging
    query used (answered from the cache when `x` is the video judged): the pipeline classifies the
    written file with it, so checking that the file holds the judged video costs no request.
    """

    def __init__(self, model: nn.Module, spec: DeliverySpec, **kwargs: Any) -> None:
        if not callable(getattr(model, "metered", None)):
            raise BadParameterError(f"expected a metered (deployed) model, got {type(model).__name__}")
        super().__init__(model, spec, **kwargs)
        if self.samples != 1:
            raise BadParameterError(
                f"expected one EOT draw per query for a deployed model, got eot={self.samples}"
            )

    def metered(self, x: Tensor, allowance: int | None) -> tuple[Tensor, int]:
        """The deployed model's answers to `x` `(N, T, 3, H, W)` delivered (one fresh draw per video)
        and the requests they cost, at most `allowance` (None: no limit)."""
        made = len(self.draws)
        delivered = self.deliver(x.detach())
        return self._ask(x, delivered, self.draws[made:], allowance)

    def _ask(
        self, x: Tensor, delivered: Tensor, draws: list[tuple[int, int]], allowance: int | None
    ) -> tuple[Tensor, int]:
        # Each query is named by the candidate and its draw, not by the delivered bytes: libx264 does
        # not always encode one clip the same way twice (its mb-tree, measured on move_left_1 with
        # noise), and a repeated query must still be found in the cache and in a resumed run's log.
        keys = [
            self.model.query_keys(v[None], f"{self.spec.at(crf)} offset={offset}")[0]  # type: ignore[operator]
            for v, (crf, offset) in zip(x.detach(), draws, strict=True)
        ]
        return self.model.metered(delivered, allowance, keys)  # type: ignore[operator]

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities `(N, K)` of the delivered videos (not charged to any budget)."""
        return self.metered(x, None)[0]

    def judged(self, x: Tensor) -> Tensor:
        """Log-probabilities `(N, K)` of `x` delivered with the last draw made (see the class docstring);
        no new draw is recorded."""
        if not self.draws:
            raise ValueError("expected a judged query before asking about the judged video again")
        crf, offset = self.draws[-1]
        made = len(self.draws)
        delivered = self.deliver(x.detach(), crf=crf, offset=offset)
        del self.draws[made:]  # a repeat of the judged encode, not an encode of the attack
        return self._ask(x, delivered, [(crf, offset)] * int(x.shape[0]), None)[0]
