"""V-BAD and its baselines P-BAD and SR-BAD: score-only black-box attacks (Jiang et al., ACM MM 2019).

The target model is a `vidattack.blackbox.QueryModel`: the attack sees class probabilities of the videos
it asks about and nothing else, and every video it asks about is a counted query. Each iteration:

1. **Tentative perturbation** `h` (T, 3, H, W) of signs (paper Sec. 3.3, eq. 7): `transferred` = sign of
   the gradient, through image surrogates applied frame by frame, of the MSE between their features
   and a target feature map, summed over the surrogate ensemble (the official code's loop reset the
   loss per model, so only its last model counted); untargeted: a fresh target |N(0, 1)| x
   `noise_scale` at every call; targeted: the features of the target-class video's frames under a
   random keep-mask (`keep_prob`) redrawn at every call. `static` = all ones; `random` = random signs.
2. **Partition** of `h` into patches sharing one coefficient (Sec. 3.4): `uniform` = each frame cut into
   `grid` x `grid` patches, all channels together (K = grid^2 T coefficients); row and column bands
   are `floor(i * grid / size)`, so every pixel of any frame size is covered (uneven patches; the
   official code required widths divisible by 8 and left the bottom of tall frames out). `random` =
   each frame's input dimensions dealt at random into grid^2 equal groups, redrawn every iteration.
   `pixel` = every input dimension its own coefficient (pixel-wise NES, Ilyas et al.).
3. **NES** over the K coefficients (Algorithm 2): `population` antithetic Gaussian samples z, queries
   x + sigma * R(z, U) (not clipped to [0, 1], as in the official code), rank transform (a sample that keeps the wanted class on top gets its rank /
   (n - 1); one that loses it gets the tied worst rank for a targeted attack, the tied best rank for an
   untargeted one, as in the official code; ties share their mean rank), estimate g = sum w_i z_i.
   R applies each coefficient to its patch of `h` as is (entries +-1), so sigma is in pixel units and
   the paper's 1e-6 is a few float32 ulps per pixel, as in the official code; normalising each patch
   to unit length (the paper's text) would only rescale sigma per patch size.
4. **PGD step** along `h` with each patch's sign set by sign(g), projected to the eps ball and [0, 1].

Schedules (official code, which the paper summarises in Sec. 4.1):

- Untargeted: start at x + U(-eps, eps); step `lr` (1e-2), halved down to `min_lr` (1e-3) whenever the
  clean class's probability went down over a window of 20 iterations; stop at the first success.
- Targeted (Algorithm 1, Ilyas et al.'s partial-information schedule): start from a video of the target
  class (`target_video`, a file, resampled to the attacked frames: frame f of an F-frame video takes
  the target's frame f (F' - 1) / (F - 1) rounded half up, resized to H x W), with eps = 1. Each iteration tries
  to shrink eps by `delta_eps` (0.5 at first) with a halving line search on the step (`lr`..`min_lr`),
  accepting a candidate only if the target stays top-1; else it steps at the current eps. delta_eps
  decays when shrinking keeps failing (official schedule: /2 after 1 failure down to 0.01, then /1.5
  after 10 down to 0.003, after 100 down to 0.001, then after every 100; it gives up below 1e-5), and
  the step range halves when more than half of the last 5 plain steps failed. Success: the target is
  top-1 with eps <= `eps`.

Query accounting (fixing the official code, which left out NES samples whose estimate it discarded and
could overshoot its budget): every video sent to the model counts, including the per-iteration check
and every line-search candidate; no query is ever made past `max_queries` (a call's budget is the
smaller of this parameter and the caller's `max_queries`; N videos in one call share it, each taking an
equal share of what is left when its turn comes). When the budget runs out the attack stops and returns
its best video: untargeted, the checked video with the lowest clean-class probability; targeted, the
iterate with the smallest eps that keeps the target on top (projected to eps by the caller).

Success is checked on the video the file will hold: the per-iteration check query (untargeted) and the
final check (targeted, once eps <= `eps`) are made on the iterate rounded to the 8-bit grid inside the
eps ball, while NES samples and iterates stay in float so sigma survives. Iterates are kept in the ball
of whole 8-bit levels (`grid_eps`: 12/255 for eps 0.05), so that rounding never pulls saturated pixels
back inside and undoes a success.

Surrogates: the default is the bundled `tiny-image-cnn` (`vidattack.models.image`), which looks at
frames shrunk to 16 x 16; `surrogate=resnet50,densenet121,densenet169` is the paper's ImageNet
ensemble (weights from `NAME:PATH` or the torch hub cache). `layer=late` (the default) cuts each at a
late convolutional stage (tiny: block3, resnet50: layer3, densenet: denseblock3); the official code
used the logits (`layer=logits`), which on the bundled models needed ~20% more queries.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.attacks.base import Attack, AttackContext
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import register_attack
from vidattack.blackbox import QueryModel
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.models.image import ImageSurrogate, load_surrogates
from vidattack.threat import LinfBall, ThreatModel

PAPER = "Jiang et al., Black-box Adversarial Attacks on Video Recognition Models, ACM MM 2019"

# The official code's delta-eps schedule: (floor, failures before a decay, divisor) per period.
_DELTA_SCHEDULE: tuple[tuple[float, int, float], ...] = (
    (0.01, 1, 2.0),
    (0.003, 10, 1.5),
    (0.001, 100, 1.5),
    (0.0, 100, 1.5),
)
_LR_WINDOW = 20  # untargeted: iterations between step-size checks
_EXPLORE_WINDOW = 5  # targeted: plain steps whose success rate halves the step range
_SURROGATE_CHUNK = 16  # frames per surrogate forward/backward
_MAX_CHUNK_ELEMENTS = 1 << 27  # float entries of the NES videos built at once (512 MB in float32)


# -- partitions and rectification ------------------------------------------------------------------


def uniform_patch_ids(height: int, width: int, grid: int) -> Tensor:
    """Patch index `(H, W)` in [0, grid^2) of each pixel for a `grid` x `grid` split of a frame.

    Row band `floor(y * grid / H)`, column band `floor(x * grid / W)`: every pixel belongs to exactly one
    patch for any frame size; patch sides differ by at most one pixel.
    """
    rows = torch.arange(height) * grid // height
    cols = torch.arange(width) * grid // width
    return rows.view(-1, 1) * grid + cols.view(1, -1)


@dataclass
class Partition:
    """Which coefficient each input dimension of a `(T, 3, H, W)` video follows.

    `index` (broadcastable to the video, values in [0, size)) or None for one coefficient per dimension.
    """

    size: int
    index: Tensor | None

    def expand(self, coeff: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Coefficients `(P, size)` -> per-dimension values `(P, T, C|1, H, W)` broadcastable to `shape`."""
        p = coeff.shape[0]
        if self.index is None:
            return coeff.view(p, *shape)
        return coeff[:, self.index.reshape(-1)].view(p, *self.index.shape)


def make_partition(
    kind: str, shape: tuple[int, ...], grid: int, generator: torch.Generator, device: torch.device
) -> Partition:
    """The partition of a `(T, 3, H, W)` video: `uniform`, `random` (fresh draw) or `pixel`."""
    t, c, h, w = shape
    groups = grid * grid
    if kind == "pixel":
        return Partition(size=t * c * h * w, index=None)
    offsets = torch.arange(t, device=device).view(t, 1, 1, 1) * groups
    if kind == "uniform":
        ids = uniform_patch_ids(h, w, grid).to(device).view(1, 1, h, w)
        return Partition(size=t * groups, index=offsets + ids)  # (T, 1, H, W)
    # random: deal each frame's input dimensions into `groups` groups of (nearly) equal size
    ranks = torch.rand((t, c * h * w), generator=generator, device=device).argsort(dim=1)
    return Partition(size=t * groups, index=offsets + (ranks % groups).view(t, c, h, w))


def rank_weights(values: Tensor, keeps: Tensor, targeted: bool) -> Tensor:
    """NES rank transform: weight in [0, 1] per sample (higher = better for the attack).

    `values` are the objective (to increase) of each sample; `keeps` says whether the wanted class is
    top-1 (the clean class, untargeted; the target, targeted). Samples that do not keep it are tied at
    the worst rank (targeted: the target was lost) or the best (untargeted: already adversarial).
    Ties share their mean rank.
    """
    fill = -math.inf if targeted else math.inf
    v = torch.where(keeps, values, torch.full_like(values, fill))
    n = v.numel()
    below = (v.view(-1, 1) > v.view(1, -1)).sum(dim=1).to(torch.float64)
    equal = (v.view(-1, 1) == v.view(1, -1)).sum(dim=1).to(torch.float64)
    ranks = below + (equal - 1) / 2
    return (ranks / max(n - 1, 1)).to(values.dtype)


# -- the target-class start video -------------------------------------------------------------------


def load_target_video(
    path: str | Path,
    *,
    frame_ids: tuple[int, ...],
    num_frames: int,
    size: tuple[int, int],
    device: torch.device | str = "cpu",
) -> Tensor:
    """The frames `(T, 3, H, W)` in [0, 1] of the video at `path`, resampled to an attacked video's frames.

    Frame `f` of the attacked `num_frames`-long video takes the target video's frame at the same relative
    position, `f (F' - 1) / (num_frames - 1)` rounded half up; frames are resized to `size` (bilinear,
    antialiased; the aspect ratio follows the attacked video).
    """
    from vidattack.video import load_video

    frames = load_video(path).frames  # (F', H', W', 3) uint8
    count = int(frames.shape[0])
    scale = (count - 1) / max(num_frames - 1, 1)
    pos = torch.tensor([min(count - 1, int(f * scale + 0.5)) for f in frame_ids], dtype=torch.long)
    out = frames.index_select(0, pos).permute(0, 3, 1, 2).float().div(255.0)  # (T, 3, H', W')
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return out.to(device)


# -- tentative perturbations --------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _cached_surrogates(spec: str, layer: str, device: str) -> tuple[ImageSurrogate, ...]:
    return tuple(load_surrogates(spec, layer=layer, device=device))


def _features(model: nn.Module, frames: Tensor) -> Tensor:
    return model(frames).flatten(1)


class _Tentative:
    """Makes sign maps `(T, 3, H, W)` for one video (holds the surrogates and target features)."""

    def __init__(
        self, attack: VBAD, targeted: bool, generator: torch.Generator, device: torch.device
    ) -> None:
        self.kind = attack.tentative
        self.targeted = targeted
        self.gen = generator
        self.keep_prob = attack.keep_prob
        self.noise_scale = attack.noise_scale
        self.models: tuple[ImageSurrogate, ...] = ()
        self.targets: list[Tensor] = []
        if self.kind == "transferred":
            self.models = _cached_surrogates(attack.surrogate, attack.layer, str(device))

    def set_target(self, frames: Tensor) -> None:
        """Target-class frames `(T, 3, H, W)`: their features become the targeted feature targets."""
        with torch.no_grad():
            self.targets = [
                torch.cat([_features(m, c) for c in frames.split(_SURROGATE_CHUNK)]) for m in self.models
            ]

    def __call__(self, frames: Tensor) -> Tensor:
        if self.kind == "static":
            return torch.ones_like(frames)
        if self.kind == "random":
            bits = torch.randint(0, 2, frames.shape, generator=self.gen, device=frames.device)
            return bits.to(frames.dtype) * 2 - 1
        return self._transferred(frames)

    def _transferred(self, frames: Tensor) -> Tensor:
        return transferred_perturbation(
            frames,
            self.models,
            generator=self.gen,
            targets=self.targets if self.targeted else None,
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


# -- the per-video attack ------------------------------------------------------------------------------


class _Budget:
    """One video's share of the query budget; asks the black box, truncating at the share."""

    def __init__(self, qm: QueryModel, share: int | None) -> None:
        self.qm = qm
        self.start = qm.queries
        self.share = share

    @property
    def used(self) -> int:
        return self.qm.queries - self.start

    @property
    def left(self) -> int | None:
        mine = None if self.share is None else self.share - self.used
        other = self.qm.remaining
        if mine is None:
            return other
        return mine if other is None else min(mine, other)

    def ask(self, videos: Tensor) -> Tensor:
        """Log-probabilities of as many of `videos` `(P, T, 3, H, W)` as the budget allows (maybe none)."""
        left = self.left
        n = videos.shape[0] if left is None else min(videos.shape[0], left)
        if n <= 0:
            return videos.new_empty((0, 0))
        return self.qm.log_probs(videos[:n])


@dataclass
class _Outcome:
    video: Tensor
    success: bool
    stopped: str
    iterations: int
    eps: float
    success_queries: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@register_attack("vbad")
@dataclass(kw_only=True)
class VBAD(Attack):
    """V-BAD: transferred tentative perturbations rectified patch-wise by NES (score-only black box).

    Linf threat model, eps in [0, 1] pixel units. Input `(N, T, 3, H, W)` in [0, 1]; the model is
    queried for probabilities only, through a `QueryModel` (`white_box = False`). Defaults are the
    paper's (Sec. 4.1) and the official code's: eps 0.05, 3e5 queries, population 48, sigma 1e-3
    untargeted / 1e-6 targeted, 8 x 8 uniform patches per frame, step 1e-2 .. 1e-3, delta eps 0.5,
    keep-mask 0.9, untargeted feature target |N(0, 1)| x 5. The default surrogate is the bundled
    `tiny-image-cnn` (offline); `surrogate=resnet50,densenet121,densenet169` is the paper's ensemble.
    Targeted attacks need `target_video=PATH`, a video the model classifies as the target class.
    See the module docstring for the algorithm, schedules and query accounting.
    """

    paper = f"{PAPER}, Sec. 3-4 and the official code"
    threat_summary = "additive, every pixel of every sampled frame, Linf ball; score-only queries"
    white_box = False

    eps: float = param(0.05, "Linf budget in [0, 1] pixel units", min=0, max=1)
    max_queries: int = param(
        300_000, "query budget per call (the caller's max_queries, if smaller, wins)", min=1
    )
    population: int = param(48, "NES samples per estimate (antithetic pairs, so even)", min=2, max=100_000)
    sigma: float | Literal["auto"] = param(
        AUTO,
        "NES search scale in pixel units; auto = 1e-3 untargeted, 1e-6 targeted",
        min=0,
        min_exclusive=True,
    )
    lr: float = param(1e-2, "largest PGD step (pixel units)", min=0, min_exclusive=True, max=1)
    min_lr: float = param(1e-3, "smallest PGD step (pixel units)", min=0, min_exclusive=True, max=1)
    tentative: Literal["transferred", "static", "random"] = param(
        "transferred",
        "tentative perturbation: transferred from image surrogates, static (ones), random signs",
    )
    partition: Literal["uniform", "random", "pixel"] = param(
        "uniform", "patches: uniform grid x grid per frame, random groups, or pixel (every dimension)"
    )
    grid: int = param(8, "patches per frame side (grid^2 coefficients per frame)", min=1, max=512)
    surrogate: str = param(
        "tiny-image-cnn",
        "image surrogates, comma list: tiny-image-cnn, resnet50, densenet121, densenet169 (NAME:PATH)",
    )
    layer: str = param("late", "surrogate layer: early, mid, late, logits or a layer name of each surrogate")
    keep_prob: float = param(
        0.9, "targeted: probability a feature entry is kept by the random mask", min=0, max=1
    )
    noise_scale: float = param(5.0, "untargeted: random feature target is |N(0, 1)| times this", min=0)
    target_video: str = param("", "targeted: path of a video of the target class (the starting point)")
    delta_eps: float = param(
        0.5, "targeted: first eps decrement tried per iteration", min=0, min_exclusive=True, max=1
    )
    batch_size: int = param(
        48, "videos per forward pass of the target (fewer for large frames)", min=1, max=100_000
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.population % 2:
            raise BadParameterError(
                f"population: expected an even number (antithetic pairs), got {self.population}"
            )
        if self.min_lr > self.lr:
            raise BadParameterError(f"min_lr: expected <= lr ({self.lr:g}), got {self.min_lr:g}")

    # -- black-box plumbing ------------------------------------------------------------------------

    def budget(self, ctx: AttackContext) -> int:
        """The call's query budget: this attack's `max_queries`, or the caller's if smaller."""
        if ctx.max_queries is None:
            return self.max_queries
        return min(int(ctx.max_queries), self.max_queries)

    def wrap_model(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        return QueryModel(model, max_queries=self.budget(ctx), batch_size=self.batch_size)

    @staticmethod
    def queries_used(wrapped: nn.Module) -> int:
        if isinstance(wrapped, QueryModel):
            return wrapped.queries
        return int(getattr(wrapped, "queries", 0))

    def grid_eps(self) -> float:
        """The bound the iterates keep: eps rounded down to whole 8-bit levels (12/255 for 0.05).

        Rounding the result to the 8-bit grid must not leave the ball; an iterate at the float bound
        (12.75 levels) would have every saturated pixel pulled back by 0.75 level, which measurably undid
        targeted attacks that had just succeeded in float.
        """
        levels = math.floor(self.eps * 255 + 1e-6)
        return levels / 255 if levels > 0 else self.eps

    def sigma_for(self, targeted: bool) -> float:
        """The NES scale actually used."""
        if self.sigma == AUTO:
            return 1e-6 if targeted else 1e-3
        return float(self.sigma)

    # -- the template hooks ----------------------------------------------------------------------

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps)

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        if not isinstance(model, QueryModel):
            raise BadParameterError(f"expected the QueryModel made by wrap_model, got {type(model).__name__}")
        targeted = criterion.targeted
        n, t, _, h, w = x.shape
        start_frames: Tensor | None = None
        if targeted:
            if not self.target_video:
                raise BadParameterError(
                    "expected target_video=PATH for a targeted V-BAD attack (it starts from a video of the "
                    "target class), got none"
                )
            start_frames = load_target_video(
                self.target_video,
                frame_ids=ctx.frame_ids,
                num_frames=ctx.num_frames,
                size=(h, w),
                device=x.device,
            ).to(x.dtype)
        tentative = _Tentative(self, targeted, ctx.generator, x.device)
        if start_frames is not None and self.tentative == "transferred":
            tentative.set_target(start_frames)

        out = x.clone()
        outcomes: list[_Outcome] = []
        for i in range(n):
            left = model.remaining
            share = None if left is None else left // (n - i)
            budget = _Budget(model, share)
            label = int(criterion.labels[i])
            if start_frames is not None:
                res = self._targeted(budget, x[i], start_frames, label, tentative, ctx, i if n > 1 else None)
            else:
                res = self._untargeted(budget, x[i], label, tentative, threat, ctx, i if n > 1 else None)
            res.extra["queries"] = budget.used
            out[i] = res.video
            outcomes.append(res)

        ctx.info.update(
            {
                "budget": model.max_queries,
                "sigma": self.sigma_for(targeted),
                "coefficients": self._coefficients(t, h, w),
                "surrogates": [m.describe() for m in tentative.models],
                "queries_per_video": [o.extra["queries"] for o in outcomes],
                "success_queries": [o.success_queries for o in outcomes],
                "iterations": [o.iterations for o in outcomes],
                "stopped": [o.stopped for o in outcomes],
                "final_eps": [o.eps for o in outcomes],
            }
        )
        return out

    def _coefficients(self, t: int, h: int, w: int) -> int:
        return t * 3 * h * w if self.partition == "pixel" else t * self.grid * self.grid

    # -- NES ------------------------------------------------------------------------------------------

    def _nes_signs(
        self,
        budget: _Budget,
        x_it: Tensor,
        h: Tensor,
        part: Partition,
        label: int,
        targeted: bool,
        sigma: float,
        gen: torch.Generator,
    ) -> tuple[Tensor, int] | None:
        """sign of the NES estimate `(K,)` of the objective's gradient wrt the patch coefficients, and how
        many samples kept the wanted class on top.

        None when the budget ran out before the population was evaluated (the partial estimate is dropped).
        """
        dev = x_it.device
        pairs = self.population // 2
        # pairs per chunk: `batch_size` videos, fewer for large frames so a chunk stays near 512 MB
        per_chunk = max(1, min(self.batch_size // 2, _MAX_CHUNK_ELEMENTS // (2 * x_it.numel())))
        seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=dev))
        shape = tuple(x_it.shape)
        values, keeps = [], []
        # Noise is drawn from a seeded generator twice (to query, then to accumulate), so memory stays
        # at one chunk even for pixel-wise NES on large frames.
        noise_gen = torch.Generator(device=dev).manual_seed(seed)
        for first in range(0, pairs, per_chunk):
            m = min(per_chunk, pairs - first)
            z = torch.randn((m, part.size), generator=noise_gen, device=dev, dtype=x_it.dtype)
            coeff = torch.cat([z, -z]) * sigma  # (2m, K): +z then -z
            videos = x_it.unsqueeze(0) + part.expand(coeff, shape) * h  # (2m, T, 3, H, W)
            lp = budget.ask(videos)
            if lp.shape[0] < 2 * m:
                return None
            values.append(lp[:, label] if targeted else -lp[:, label])
            keeps.append(lp.argmax(dim=1) == label)
        kept = torch.cat(keeps)
        weights = rank_weights(torch.cat(values), kept, targeted)
        est = torch.zeros(part.size, device=dev, dtype=x_it.dtype)
        noise_gen = torch.Generator(device=dev).manual_seed(seed)
        at = 0
        for first in range(0, pairs, per_chunk):
            m = min(per_chunk, pairs - first)
            z = torch.randn((m, part.size), generator=noise_gen, device=dev, dtype=x_it.dtype)
            w = weights[at : at + 2 * m]
            est += ((w[:m] - w[m:]).view(-1, 1) * z).sum(dim=0)
            at += 2 * m
        return est.sign(), int(kept.sum())

    def _direction(
        self,
        x_it: Tensor,
        label: int,
        targeted: bool,
        tentative: _Tentative,
        budget: _Budget,
        ctx: AttackContext,
    ) -> tuple[Tensor, int] | None:
        """A rectified step direction `(T, 3, H, W)` and the number of NES samples that kept the wanted
        class on top; None when the budget ran out."""
        h = tentative(x_it)
        part = make_partition(self.partition, tuple(x_it.shape), self.grid, ctx.generator, x_it.device)
        estimate = self._nes_signs(
            budget, x_it, h, part, label, targeted, self.sigma_for(targeted), ctx.generator
        )
        if estimate is None:
            return None
        signs, kept = estimate
        return part.expand(signs.unsqueeze(0), tuple(x_it.shape))[0] * h, kept

    # -- schedules -------------------------------------------------------------------------------------

    def _untargeted(
        self,
        budget: _Budget,
        x: Tensor,
        label: int,
        tentative: _Tentative,
        threat: ThreatModel,
        ctx: AttackContext,
        index: int | None,
    ) -> _Outcome:
        x0 = x.unsqueeze(0)  # (1, T, 3, H, W)
        eps = self.grid_eps()
        noise = (
            torch.rand(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype) * 2 - 1
        ) * self.grid_eps()
        x_it = (x + noise).clamp(0, 1)
        lr = self.lr
        window: list[float] = []
        best, best_p = x, math.inf
        iterations = 0
        while True:
            checked = threat.quantize(x_it.unsqueeze(0), x0)  # what the file would hold
            lp = budget.ask(checked)
            if lp.shape[0] == 0:
                return _Outcome(best, False, "budget", iterations, self.eps)
            p_label = float(lp[0, label].exp())
            self._record(ctx, index, budget, lp[0], label, loss=float(lp[0, label]), eps=self.eps, lr=lr)
            if p_label < best_p:
                best, best_p = checked[0], p_label
            if int(lp[0].argmax()) != label:
                return _Outcome(
                    checked[0], True, "success", iterations, self.eps, success_queries=budget.used
                )
            window.append(p_label)
            if len(window) == _LR_WINDOW:
                # the official schedule: a window in which the clean class lost ground anneals the step
                if window[-1] <= window[0]:
                    lr = max(lr / 2, self.min_lr)
                window = []
            found = self._direction(x_it, label, False, tentative, budget, ctx)
            if found is None:
                return _Outcome(best, False, "budget", iterations, self.eps)
            iterations += 1
            direction = found[0]
            x_it = torch.minimum(torch.maximum(x_it + lr * direction, x - eps), x + eps).clamp(0, 1)

    def _targeted(
        self,
        budget: _Budget,
        x: Tensor,
        start: Tensor,
        target: int,
        tentative: _Tentative,
        ctx: AttackContext,
        index: int | None,
    ) -> _Outcome:
        final = LinfBall(eps=self.eps)
        eps = self.grid_eps()
        x0 = x.unsqueeze(0)
        x_it, cur_eps = start.clone(), 1.0
        lp = budget.ask(x_it.unsqueeze(0))
        if lp.shape[0] == 0:
            return _Outcome(x_it, False, "budget", 0, cur_eps)
        self._record(ctx, index, budget, lp[0], target, loss=-float(lp[0, target]), eps=cur_eps, lr=self.lr)
        if int(lp[0].argmax()) != target:
            raise BadParameterError(
                f"expected target_video to be classified as the target class {target} by the model, "
                f"got class {int(lp[0].argmax())} (p = {float(lp[0].exp().max()):.3f})"
            )
        max_lr, min_lr = self.lr, self.min_lr
        delta = self.delta_eps
        explore: deque[bool] = deque(maxlen=_EXPLORE_WINDOW)
        reduce_fail, period, iterations = 0, 0, 0
        while True:
            if cur_eps <= eps + 1e-12:
                checked = final.quantize(x_it.unsqueeze(0), x0)
                lp = budget.ask(checked)
                if lp.shape[0] == 0:
                    return _Outcome(x_it, False, "budget", iterations, cur_eps)
                if int(lp[0].argmax()) == target:
                    return _Outcome(
                        checked[0], True, "success", iterations, cur_eps, success_queries=budget.used
                    )
            found = self._direction(x_it, target, True, tentative, budget, ctx)
            if found is None:
                return _Outcome(x_it, False, "budget", iterations, cur_eps)
            iterations += 1
            direction, kept = found
            if kept == 0:
                continue  # every NES sample lost the target: draw again (the official code does the same)
            # A zero direction still moves: at the start x_it is the target video itself, whose features
            # match the target's, so the tentative perturbation is 0 and only the shrinking eps ball
            # (the projection toward x) changes the video until the two differ.
            lr, prop_de = max_lr, delta
            while True:
                prop_eps = max(cur_eps - prop_de, eps)
                cand = torch.minimum(torch.maximum(x_it + lr * direction, x - prop_eps), x + prop_eps).clamp(
                    0, 1
                )
                lp = budget.ask(cand.unsqueeze(0))
                if lp.shape[0] == 0:
                    return _Outcome(x_it, False, "budget", iterations, cur_eps)
                if int(lp[0].argmax()) == target:
                    if prop_de > 0:
                        max_lr, min_lr = self.lr, self.min_lr
                        explore.clear()
                        reduce_fail = 0
                    else:
                        explore.append(True)
                        reduce_fail += 1
                    x_it, cur_eps = cand, prop_eps
                    self._record(
                        ctx, index, budget, lp[0], target, loss=-float(lp[0, target]), eps=cur_eps, lr=lr
                    )
                    break
                if lr >= min_lr * 2:
                    lr /= 2
                elif prop_de > 0:
                    prop_de, lr = 0.0, max_lr  # cannot shrink: try a plain step at the current eps
                else:
                    explore.append(False)
                    reduce_fail += 1
                    break
            floor, patience, divisor = _DELTA_SCHEDULE[period]
            if reduce_fail >= patience:
                delta = max(delta / divisor, floor)
                if delta <= floor and period < len(_DELTA_SCHEDULE) - 1:
                    period += 1
                if delta < 1e-5:
                    return _Outcome(x_it, False, "converged", iterations, cur_eps)
                reduce_fail = 0
            if len(explore) == _EXPLORE_WINDOW and min_lr > 1e-7 and sum(explore) < len(explore) / 2:
                max_lr, min_lr = max_lr / 2, min_lr / 2
                explore.clear()

    def _record(
        self,
        ctx: AttackContext,
        index: int | None,
        budget: _Budget,
        lp: Tensor,
        label: int,
        *,
        loss: float,
        eps: float,
        lr: float,
    ) -> None:
        # the video index only matters (and is only recorded) when several videos share the call
        row = {} if index is None else {"video": float(index)}
        ctx.record(
            **row,
            queries=budget.qm.queries,
            loss=loss,
            top1_prob=float(lp.exp().max()),
            label_prob=float(lp[label].exp()),
            eps=eps,
            lr=lr,
        )
        if budget.qm.max_queries is not None:
            ctx.step(budget.qm.queries, budget.qm.max_queries)


@register_attack("p-bad")
@dataclass(kw_only=True)
class PBAD(VBAD):
    """P-BAD: pixel-wise NES with a static tentative perturbation (the paper's baseline after Ilyas et al.).

    V-BAD with `tentative=static`, `partition=pixel` (every input dimension its own coefficient) and a
    population of 96 (paper Sec. 4.3). Everything else as `vbad`.
    """

    paper = f"{PAPER}, Sec. 4.3 (P-BAD baseline, after Ilyas et al. 2018)"

    population: int = param(96, "NES samples per estimate (antithetic pairs, so even)", min=2, max=100_000)
    tentative: Literal["transferred", "static", "random"] = param(
        "static", "tentative perturbation: transferred from image surrogates, static (ones), random signs"
    )
    partition: Literal["uniform", "random", "pixel"] = param(
        "pixel", "patches: uniform grid x grid per frame, random groups, or pixel (every dimension)"
    )
    batch_size: int = param(96, "videos per forward pass of the target", min=1, max=100_000)


@register_attack("sr-bad")
@dataclass(kw_only=True)
class SRBAD(VBAD):
    """SR-BAD: static tentative perturbation, random partition (the paper's baseline after Bhagoji et al.).

    V-BAD with `tentative=static` and `partition=random` (grid^2 random groups per frame, redrawn every
    iteration), NES population 48 (paper Sec. 4.3). Everything else as `vbad`.
    """

    paper = f"{PAPER}, Sec. 4.3 (SR-BAD baseline, after Bhagoji et al. 2018)"

    tentative: Literal["transferred", "static", "random"] = param(
        "static", "tentative perturbation: transferred from image surrogates, static (ones), random signs"
    )
    partition: Literal["uniform", "random", "pixel"] = param(
        "random", "patches: uniform grid x grid per frame, random groups, or pixel (every dimension)"
    )


def plot_query_curve(history: list[dict[str, float]], path: str | Path) -> Path:
    """Draw a black-box attack's query curve (`AttackResult.history`) to a PNG at `path`.

    Top: probability of the clean (untargeted) or target class and of the top-1 class against queries;
    bottom: the Linf bound in force (targeted attacks shrink it from 1 to eps). One line per video.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    fig, (ax_p, ax_e) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(2, 1))
    try:
        videos = sorted({int(r.get("video", 0)) for r in history})
        for v in videos:
            rows = [r for r in history if int(r.get("video", 0)) == v and "queries" in r]
            q = [r["queries"] for r in rows]
            tag = f" (video {v})" if len(videos) > 1 else ""
            ax_p.plot(q, [r.get("label_prob", math.nan) for r in rows], label=f"clean/target class{tag}")
            ax_p.plot(q, [r.get("top1_prob", math.nan) for r in rows], "--", label=f"top-1{tag}")
            ax_e.plot(q, [r.get("eps", math.nan) for r in rows], label=f"eps{tag}")
        ax_p.set_ylabel("probability")
        ax_p.set_ylim(-0.02, 1.02)
        ax_p.legend(loc="best", fontsize="small")
        ax_e.set_ylabel("Linf bound")
        ax_e.set_xlabel("queries")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out
