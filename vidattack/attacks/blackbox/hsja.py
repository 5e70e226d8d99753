"""HopSkipJumpAttack for video: a decision-based (label-only) black-box attack.

Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient Decision-Based Attack", IEEE S&P
2020 (Algorithm 2; the authors' code, github.com/Jianbo-Lab/HSJA, for the constants). It needs nothing
but the top label of each query. From an adversarial start (a video of another class, `start_video`, or
uniform noise blended toward the clean video) it repeats:

1. binary search on the segment (L2: blend; Linf: box projection) between the clean video and the
   adversarial point, down to the boundary (threshold theta = gamma / d^1.5 for L2, gamma / d^2 for
   Linf, d the search dimension);
2. a gradient-direction estimate at the boundary point from `n_t = init_evals * sqrt(t)` (at most
   `max_evals`) random unit directions, each judged adversarial (+1) or not (-1), with the baseline
   (mean decision) subtracted;
3. a geometric step along it (the sign for Linf): dist / sqrt(t), halved until adversarial again.

For video the random directions live in V-BAD's partitioned space (`partitions.py`): one coefficient
per patch of a `grid` x `grid` split of each frame (or per pixel with `partition=pixel`), so d is
T * grid^2 rather than the pixel count. Every query is the 8-bit video a file would hold (a deployed
model only ever sees those), so the probes are at least `min_delta` per pixel (RMS): a smaller one rounds
away entirely; and binary searches stop at one 8-bit level.

`frames` (`all`, `K`, `random:K`, `0,3,7`, in the video's frame numbers) restricts it to those frames:
the partition covers them alone (d counts their coefficients only, in theta and delta), the start and
every probe are the clean video on the other frames, which come back exactly as they came in.

Queries: every video asked counts through the `QueryModel` (the template's clean-label and judging
queries too); the attack stops when the budget cannot answer its next question and returns the closest
boundary point it visited, which is always adversarial. The paper returns the last one, but a step and
its binary search can land farther out than an earlier point; the search still goes on from the last,
so the queries asked are the paper's. `info` holds the distortion reached and the queries spent, and
`dimension`, the d of the search space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, Unsupported
from vidattack.attacks.blackbox.frames import check_frames, frame_mask, reported, selected_frames
from vidattack.attacks.blackbox.partitions import Partition, coefficient_count, make_partition
from vidattack.attacks.blackbox.query_model import QueryModel
from vidattack.attacks.context import AttackContext
from vidattack.attacks.params import param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.models.capabilities import Capability
from vidattack.threat import ALL_FRAMES, FrameSpec, ThreatModel, Unbounded

PAPER = "Chen, Jordan & Wainwright, HopSkipJumpAttack: A Query-Efficient Decision-Based Attack, IEEE S&P 2020"
_LEVEL = 1.0 / 255.0


class _OutOfQueries(Exception):
    """The budget cannot answer the next question: stop at the closest boundary point visited."""


def _quantize(v: Tensor) -> Tensor:
    # what an 8-bit file holds: the only videos a deployed model is ever asked about
    return (v.clamp(0, 1) * 255.0).round() / 255.0


@dataclass
class _Oracle:
    """Decisions about one attacked video: True where a candidate fools the model (all charged to it).

    `clean` is the attacked video `(T, 3, H, W)` and `keep` `(T, 1, 1, 1)` the frames it may change
    (None: all): `file` makes every candidate the 8-bit video a file would hold with the others clean.
    """

    model: QueryModel
    video: int
    label: int
    targeted: bool
    batch: int
    clean: Tensor
    keep: Tensor | None = None

    @property
    def used(self) -> int:
        return self.model.video_queries(self.video)

    def file(self, v: Tensor) -> Tensor:
        """`v` on the 8-bit grid, exactly the clean video on the frames it may not change."""
        return self.clean_outside_(_quantize(v))

    def clean_outside_(self, videos: Tensor) -> Tensor:
        """`videos` `(..., T, 3, H, W)` set, in place, to the clean video on the frames it may not change."""
        if self.keep is not None:
            fixed = self.keep.logical_not().reshape(-1)  # (T,)
            videos[..., fixed, :, :, :] = self.clean[fixed]
        return videos

    def ask(self, videos: Tensor) -> Tensor:
        """Decisions `(P,)` for the 8-bit candidates `videos` `(P, T, 3, H, W)`; `_OutOfQueries` when the
        budget cannot answer them all."""
        out = []
        for start in range(0, videos.shape[0], self.batch):
            chunk = videos[start : start + self.batch]
            if self.model.remaining_of(self.video) == 0:
                raise _OutOfQueries
            top = self.model.log_probs(chunk, video=self.video).argmax(dim=1)
            if top.shape[0] < chunk.shape[0]:
                raise _OutOfQueries
            out.append(top == self.label if self.targeted else top != self.label)
        return torch.cat(out)


@register_attack("hsja")
@dataclass(kw_only=True)
class HSJA(Attack):
    """HopSkipJumpAttack (decision-based): the smallest L2 or Linf change that flips the top label.

    Label-only black box (`needs = LABELS`): the model is asked for decisions only, through a
    `QueryModel`. Input `(N, T, 3, H, W)` in [0, 1]; videos are attacked one after another. It minimises
    the distortion rather than staying in a given ball: the result is always adversarial when a start
    was found, and `info["distortion"]` (in the chosen norm, pixel units in [0, 1], over the whole
    video) says how far it got; `stop_at` stops once it is that small. Defaults are the paper's code's:
    gamma 1, 100 initial and at most 10,000 evaluations per gradient estimate, geometric step search.
    `frames` (default all) names the frames it may touch; the others come back unchanged and the search
    space (d) shrinks to the named ones.
    """

    paper = f"{PAPER}, Algorithm 2 and the authors' code; V-BAD's partitioned search space"
    threat_summary = "additive, every pixel of every frame (or of `frames`), minimal L2 or Linf distortion; label-only queries"
    white_box = False
    needs: ClassVar[Capability] = Capability.LABELS
    common: ClassVar[dict[str, str | Unsupported]] = {
        "eps": Unsupported("it minimises the distortion (stop_at stops early at a distortion)"),
        "alpha": Unsupported("its steps are geometric (dist / sqrt(t), halved)"),
        "steps": Unsupported("its budget is max_queries"),
    }

    norm: Literal["l2", "linf"] = param("l2", "the distortion minimised: l2 (whole video) or linf")
    max_queries: int = param(
        10_000,
        "query budget per video, label and judging queries included (the caller's, if smaller, wins)",
        min=3,
    )
    gamma: float = param(
        1.0,
        "binary search threshold theta = gamma / d^1.5 (l2) or gamma / d^2 (linf)",
        min=0,
        min_exclusive=True,
    )
    init_evals: int = param(100, "directions of the first gradient estimate (times sqrt(t) after)", min=1)
    max_evals: int = param(10_000, "most directions of one gradient estimate", min=1)
    partition: Literal["uniform", "pixel"] = param(
        "uniform", "search space: grid x grid patches per frame (V-BAD's), or every pixel"
    )
    grid: int = param(8, "patches per frame side with partition=uniform", min=1, max=512)
    min_delta: float = param(
        2 / 255,
        "smallest probe size per pixel (RMS, [0, 1] units): smaller ones round away in 8 bits",
        min=0,
        min_exclusive=True,
    )
    start_video: str = param(
        "", "a video of another class (the target class, targeted) to start from; else noise"
    )
    init_tries: int = param(100, "uniform-noise videos tried for a start when there is no start_video", min=1)
    stop_at: float = param(0.0, "stop once the distortion is at most this (0: spend the whole budget)", min=0)
    batch_size: int = param(32, "videos per forward pass of the target", min=1, max=100_000)
    # param() returns a dataclasses.field and FrameSpec is frozen, so the default is never shared mutably
    frames: FrameSpec = param(  # noqa: RUF009
        ALL_FRAMES, "frames it may change: all, K (first K), random:K or a list 0,3,7; the rest stay exact"
    )

    def budget(self, ctx: AttackContext) -> int:
        """Each video's query budget: this attack's `max_queries`, or the caller's if smaller."""
        return self.max_queries if ctx.max_queries is None else min(int(ctx.max_queries), self.max_queries)

    def hyperparameters(self) -> dict[str, Any]:
        return reported(super().hyperparameters())

    def wrap_model(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        check_frames(ctx, self.frames)  # before the clean-label query: a bad frame number costs none
        return QueryModel(
            model, max_queries=self.budget(ctx), videos=ctx.num_videos, batch_size=self.batch_size
        )

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return Unbounded(mask=frame_mask(ctx, self.frames, x))

    def distance(self, a: Tensor, b: Tensor) -> float:
        """The chosen norm of `a - b` over the whole video."""
        d = (a - b).flatten()
        return float(d.abs().max()) if self.norm == "linf" else float(d.norm())

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        if not isinstance(model, QueryModel):
            raise BadParameterError(f"expected the QueryModel made by wrap_model, got {type(model).__name__}")
        out = x.clone()
        info: dict[str, list[float | int | str | None]] = {"distortion": [], "iterations": [], "stopped": []}
        keep = None if threat.mask is None else threat.mask[0]  # (T, 1, 1, 1)
        for i in range(x.shape[0]):
            label = int(criterion.labels[i])
            oracle = _Oracle(model, i, label, criterion.targeted, self.batch_size, x[i], keep)
            start = ctx.starting_points[i] if ctx.starting_points is not None else None
            video, dist, iterations, stopped = self._attack_one(oracle, x[i], start, ctx)
            out[i] = video
            info["distortion"].append(dist)
            info["iterations"].append(iterations)
            info["stopped"].append(stopped)
        for key, values in info.items():
            ctx.info[key] = values[0] if x.shape[0] == 1 else values
        ctx.info["norm"] = self.norm
        searched = x.shape[1] if keep is None else int(keep.sum())  # frames the search covers
        ctx.info["dimension"] = coefficient_count(self.partition, (searched, *x.shape[2:]), self.grid)  # d
        return out

    def _attack_one(
        self, oracle: _Oracle, x: Tensor, start: Tensor | None, ctx: AttackContext
    ) -> tuple[Tensor, float | None, int, str]:
        gen = ctx.generator_of(oracle.video)
        sel = None if oracle.keep is None else selected_frames(oracle.keep.unsqueeze(0))
        part = make_partition(self.partition, tuple(x.shape), self.grid, gen, x.device, frames=sel)
        d = part.size
        theta = self.gamma / (d * math.sqrt(d)) if self.norm == "l2" else self.gamma / (d * d)
        try:
            x_b = self._start(oracle, x, start, gen)
        except _OutOfQueries:
            return x, None, 0, "budget spent before a start was found"
        if x_b is None:
            return x, None, 0, "no adversarial start found (give start_video)"
        t = 0
        # the search goes on from the last boundary point, as in the paper, but a step and its binary
        # search can land farther out than an earlier point: the closest one visited is what is returned
        best: tuple[Tensor, float] | None = None
        try:
            x_b = self._boundary(oracle, x, x_b, theta)
            while True:
                dist = self.distance(x_b, x)
                self._record(ctx, oracle, t, dist)
                if best is None or dist < best[1]:
                    best = (x_b, dist)
                if dist <= self.stop_at:
                    return x_b, dist, t, "reached stop_at"
                t += 1
                x_b = self._iteration(oracle, x, x_b, part, theta, t, dist, gen)
        except _OutOfQueries:
            if best is None:  # the budget ran out inside the first binary search: its point is adversarial
                return x_b, self.distance(x_b, x), t, "budget spent"
            return best[0], best[1], t, "budget spent"

    def _iteration(
        self,
        oracle: _Oracle,
        x: Tensor,
        x_b: Tensor,
        part: Partition,
        theta: float,
        t: int,
        dist: float,
        gen: torch.Generator,
    ) -> Tensor:
        # pixels the search may move: the floor on probes is per pixel of the selected frames
        numel = x[0].numel() * (x.shape[0] if part.frames is None else len(part.frames))
        d = part.size
        # the paper's delta (0.1 at first, then sqrt(d) theta dist / d theta dist), floored at min_delta
        # RMS per pixel, in L2 units of the whole video
        paper = 0.1 if t == 1 else (math.sqrt(d) * theta * dist if self.norm == "l2" else d * theta * dist)
        delta = max(paper, self.min_delta * math.sqrt(numel))
        evals = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
        grad = self._estimate(oracle, x_b, part, delta, evals, gen)
        update = grad.sign() if self.norm == "linf" else grad
        step = dist / math.sqrt(t)
        while True:
            moved = float(step * update.abs().max())
            if moved < 0.5 * _LEVEL:  # the step rounds away: stay at the boundary point
                return x_b
            cand = oracle.file(x_b + step * update)
            if bool(oracle.ask(cand.unsqueeze(0))[0]):
                break
            step /= 2.0
        return self._boundary(oracle, x, cand, theta)

    def _estimate(
        self, oracle: _Oracle, x_b: Tensor, part: Partition, delta: float, evals: int, gen: torch.Generator
    ) -> Tensor:
        """The baseline-subtracted gradient direction at `x_b` (unit L2), from `evals` random directions
        drawn per coefficient of the partition, asked in chunks so memory stays one chunk of videos."""
        shape = tuple(x_b.shape)
        sum_fu = torch.zeros_like(x_b)
        sum_u = torch.zeros_like(x_b)
        sum_f, n = 0.0, 0
        # two chunk-sized buffers reused in place: a fresh (P, T, 3, H, W) tensor per elementwise op
        # made the allocator map and fault in ~10 chunks of memory per chunk asked (half the run time
        # went to the kernel); the arithmetic and its order are unchanged, so results are bit-identical
        chunk = min(oracle.batch, evals)
        rv_buf = x_b.new_empty((chunk, *shape))
        cand_buf = x_b.new_empty((chunk, *shape))
        while n < evals:
            p = min(oracle.batch, evals - n)
            size = (p, part.size)
            if self.norm == "l2":
                coeff = torch.randn(size, generator=gen, device=x_b.device)
            else:
                coeff = torch.rand(size, generator=gen, device=x_b.device) * 2 - 1
            rv, cand = rv_buf[:p], cand_buf[:p]
            rv.copy_(part.expand(coeff, shape).expand(p, *shape))  # (P, T, 3, H, W)
            rv.div_(rv.flatten(1).norm(dim=1).clamp_min(1e-12).view(p, 1, 1, 1, 1))
            torch.mul(rv, delta, out=cand).add_(x_b).clamp_(0, 1).mul_(255.0).round_().div_(255.0)
            oracle.clean_outside_(cand)  # the frames it may not change: exactly the clean video's
            torch.sub(cand, x_b, out=rv).div_(delta)  # what was actually asked, after clipping and rounding
            fval = oracle.ask(cand).to(x_b.dtype) * 2 - 1  # (P,)
            sum_u += rv.sum(0)
            sum_fu += rv.mul_(fval.view(p, 1, 1, 1, 1)).sum(0)
            sum_f += float(fval.sum())
            n += p
        mean_f = sum_f / n
        # all on one side: the paper's code takes the signed mean direction; else the baseline goes
        grad = sum_fu / n if abs(mean_f) == 1.0 else (sum_fu - mean_f * sum_u) / n
        return grad / grad.norm().clamp_min(1e-12)

    def _boundary(self, oracle: _Oracle, x: Tensor, adv: Tensor, theta: float) -> Tensor:
        """Binary search between `x` and adversarial `adv` toward the boundary; the result is adversarial."""
        if self.norm == "l2":
            high, low = 1.0, 0.0
            span = float((adv - x).abs().max())
            threshold = max(theta, 0.5 * _LEVEL / max(span, 1e-12))
        else:
            high, low = float((adv - x).abs().max()), 0.0
            threshold = max(min(high * theta, theta), 0.5 * _LEVEL)
        best = adv
        while (high - low) > threshold:
            mid = (high + low) / 2.0
            cand = self._project(oracle, x, adv, mid)
            if torch.equal(cand, best):
                high = mid
                continue
            if bool(oracle.ask(cand.unsqueeze(0))[0]):
                high, best = mid, cand
            else:
                low = mid
        return best

    def _project(self, oracle: _Oracle, x: Tensor, adv: Tensor, alpha: float) -> Tensor:
        if self.norm == "l2":
            return oracle.file((1 - alpha) * x + alpha * adv)
        return oracle.file(torch.minimum(torch.maximum(adv, x - alpha), x + alpha))

    def _start(self, oracle: _Oracle, x: Tensor, start: Tensor | None, gen: torch.Generator) -> Tensor | None:
        """An adversarial 8-bit video: `start` when it fools the model (else an error), or noise blended
        toward `x` as far as it still fools it (the reference's BlendedUniformNoise start)."""
        if start is not None:
            s = oracle.file(start)
            if not bool(oracle.ask(s.unsqueeze(0))[0]):
                want = "of the target class" if oracle.targeted else "of another class than the clean video"
                # with frames named, the start is start_video on those frames and the clean one elsewhere
                which = " (its named frames over the clean video's others)" if oracle.keep is not None else ""
                raise BadParameterError(
                    f"expected start_video{which} to be classified as a video {want}, got it not"
                )
            return s
        for _ in range(self.init_tries):
            noise = oracle.file(torch.rand(x.shape, generator=gen, device=x.device))
            if bool(oracle.ask(noise.unsqueeze(0))[0]):
                high, low = 1.0, 0.0
                best = noise
                while high - low > 0.001:
                    mid = (high + low) / 2.0
                    cand = oracle.file((1 - mid) * x + mid * noise)
                    if bool(oracle.ask(cand.unsqueeze(0))[0]):
                        high, best = mid, cand
                    else:
                        low = mid
                return best
        return None

    def _record(self, ctx: AttackContext, oracle: _Oracle, t: int, dist: float) -> None:
        row = {"video": float(oracle.video)} if oracle.model.videos > 1 else {}
        ctx.record(**row, queries=oracle.used, distortion=dist, iteration=t)
        qm = oracle.model
        if qm.max_queries is not None:
            ctx.step(qm.queries, qm.max_queries * qm.videos)
