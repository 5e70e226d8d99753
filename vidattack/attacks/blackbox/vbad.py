"""V-BAD and its baselines P-BAD and SR-BAD: score-only black-box attacks (Jiang et al., ACM MM 2019).

The target model is a `QueryModel`: the attack sees class probabilities of the videos it asks about and
nothing else, and every video it asks about is a counted query. Each iteration (paper Sec. 3.2, steps
(a)-(e)):

1. a tentative perturbation `h` (T, 3, H, W) of signs (`tentative.py`: transferred from image
   surrogates, static or random);
2. a partition of `h` into patches sharing one coefficient (`partitions.py`: uniform, random, pixel);
3. NES over the patch coefficients (`nes.py`), whose signs rectify the patches of `h`;
4. a PGD step along the rectified `h`, projected to the eps ball and [0, 1].

Schedules (official code, which the paper summarises in Sec. 4.1):

- Untargeted: start at x + U(-eps, eps); step `lr` (1e-2), halved down to `min_lr` (1e-3) whenever the
  clean class's probability went down over a window of 20 iterations; stop at the first success.
- Targeted (Algorithm 1, Ilyas et al.'s partial-information schedule): start from a video of the target
  class (the template's `starting_points`; `vidattack.starting_points` samples the file `target_video`
  to the attacked frames), with eps = 1. Each iteration tries to shrink eps by `delta_eps` (0.5 at first)
  with a halving line search on the step (`lr`..`min_lr`), accepting a candidate only if the target
  stays top-1; else it steps at the current eps. delta_eps decays when shrinking keeps failing (official
  schedule: /2 after 1 failure down to 0.01, then /1.5 after 10 down to 0.003, after 100 down to 0.001,
  then after every 100; it gives up below 1e-5), and the step range halves when more than half of the
  last 5 plain steps failed. Success: the target is top-1 with eps <= `eps`.

Query accounting (fixing the official code, which left out NES samples whose estimate it discarded and
could overshoot its budget): every video sent to the model counts, including the template's clean-label
and judging queries, the per-iteration check and every line-search candidate; no video ever makes more
than its budget (the smaller of this attack's `max_queries` and the caller's), the judging query being
held back by the template. When the budget runs out the attack stops and returns its best video:
untargeted, the checked video with the lowest clean-class probability; targeted, the iterate with the
smallest eps that keeps the target on top (projected to eps by the template).

Success is checked on the video the file will hold: the per-iteration check query (untargeted) and the
final check (targeted, once eps <= `eps`) are made on the iterate rounded to the 8-bit grid inside the
eps ball, while NES samples and iterates stay in float so sigma survives. Iterates are kept in the ball
of whole 8-bit levels (`grid_eps`: 12/255 for eps 0.05), so that rounding never pulls saturated pixels
back inside and undoes a success.

`frames` (`all`, `K`, `random:K`, `0,3,7`) restricts the attack to those frames: the start, the tentative
perturbation, the partition and the NES samples cover them alone; the others come back exactly as given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.blackbox import frames as named
from vidattack.attacks.blackbox.nes import nes_signs
from vidattack.attacks.blackbox.partitions import coefficient_count, make_partition
from vidattack.attacks.blackbox.query_model import QueryModel
from vidattack.attacks.blackbox.tentative import Tentative
from vidattack.attacks.blackbox.vbad_schedule import (
    Outcome,
    OutOfQueries,
    TargetedSchedule,
    VideoQueries,
    pgd_step,
)
from vidattack.attacks.context import AttackContext
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.threat import ALL_FRAMES, FrameSpec, LinfBall, ThreatModel, apply_mask

PAPER = "Jiang et al., Black-box Adversarial Attacks on Video Recognition Models, ACM MM 2019"

_LR_WINDOW = 20  # untargeted: iterations between step-size checks


@register_attack("vbad")
@dataclass(kw_only=True)
class VBAD(Attack):
    """V-BAD: transferred tentative perturbations rectified patch-wise by NES (score-only black box).

    Linf threat model, eps in [0, 1] pixel units. Input `(N, T, 3, H, W)` in [0, 1]; the model is
    queried for probabilities only, through a `QueryModel` (`white_box = False`). Defaults are the
    paper's (Sec. 4.1) and the official code's: eps 0.05, 3e5 queries per video, population 48, sigma
    1e-3 untargeted / 1e-6 targeted, 8 x 8 uniform patches per frame, step 1e-2 .. 1e-3, delta eps 0.5,
    keep-mask 0.9, untargeted feature target |N(0, 1)| x 5. The default surrogate is the bundled
    `tiny-image-cnn` (offline); `surrogate=resnet50,densenet121,densenet169` is the paper's ensemble.
    Targeted attacks start from `starting_points`, videos the model classifies as the target class
    (`target_video=PATH` names one for the command line and `perturb_file`). See the module docstring
    for the algorithm, schedules and query accounting. `frames` (default all) names the frames it may
    touch; the others come back unchanged and its search space shrinks to the named ones.
    """

    paper = f"{PAPER}, Sec. 3-4 and the official code"
    threat_summary = (
        "additive, every pixel of every sampled frame (or of `frames`), Linf ball; score-only queries"
    )
    white_box = False

    eps: float = param(0.05, "Linf budget in [0, 1] pixel units", min=0, max=1)
    max_queries: int = param(
        300_000,
        "query budget per video, label and judging queries included (the caller's, if smaller, wins)",
        min=1,
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
    target_video: str = param(
        "", "targeted: path of a video of the target class (the starting point; decoded by the pipeline)"
    )
    delta_eps: float = param(
        0.5, "targeted: first eps decrement tried per iteration", min=0, min_exclusive=True, max=1
    )
    batch_size: int = param(
        48, "videos per forward pass of the target (fewer for large frames)", min=1, max=100_000
    )
    # param() returns a dataclasses.field and FrameSpec is frozen, so the default is never shared mutably
    frames: FrameSpec = param(  # noqa: RUF009
        ALL_FRAMES, "frames it may change: all, K (first K), random:K or a list 0,3,7; the rest stay exact"
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
        """Each video's query budget: this attack's `max_queries`, or the caller's if smaller."""
        if ctx.max_queries is None:
            return self.max_queries
        return min(int(ctx.max_queries), self.max_queries)

    def hyperparameters(self) -> dict[str, Any]:
        return named.reported(super().hyperparameters())

    def wrap_model(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        named.check_frames(ctx, self.frames)  # before the clean-label query: a bad frame number costs none
        return QueryModel(
            model, max_queries=self.budget(ctx), videos=ctx.num_videos, batch_size=self.batch_size
        )

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
        return LinfBall(eps=self.eps, mask=named.frame_mask(ctx, self.frames, x))

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        if not isinstance(model, QueryModel):
            raise BadParameterError(f"expected the QueryModel made by wrap_model, got {type(model).__name__}")
        if criterion.targeted and ctx.starting_points is None:
            raise BadParameterError(
                "expected starting points for a targeted V-BAD attack (a video of the target class to start "
                "from: target_video=PATH with perturb_file or the CLI, starting_points= in Python), got none"
            )
        tentative = Tentative(
            self.tentative,
            surrogate=self.surrogate,
            layer=self.layer,
            keep_prob=self.keep_prob,
            noise_scale=self.noise_scale,
            generator=ctx.generator,
            device=x.device,
        )
        n = x.shape[0]
        out = x.clone()
        outcomes: list[Outcome] = []
        sel = named.selected_frames(threat.mask)
        for i in range(n):
            queries = VideoQueries(model, i)
            label = int(criterion.labels[i])
            index = i if n > 1 else None
            if ctx.starting_points is not None and criterion.targeted:
                start = ctx.starting_points[i]
                tentative.set_target(start if sel is None else start[sel])
                res = self._targeted(queries, x[i], start, label, tentative, threat, ctx, index)
            else:
                res = self._untargeted(queries, x[i], label, tentative, threat, ctx, index)
            out[i] = res.video
            outcomes.append(res)
        ctx.info.update(
            {
                "budget": model.max_queries,
                "sigma": self.sigma_for(criterion.targeted),
                # the search covers the selected frames only
                "coefficients": coefficient_count(
                    self.partition, (x.shape[1] if sel is None else len(sel), *x.shape[2:]), self.grid
                ),
                "surrogates": [m.describe() for m in tentative.models],
                "success_queries": [o.success_queries for o in outcomes],
                "iterations": [o.iterations for o in outcomes],
                "stopped": [o.stopped for o in outcomes],
                "final_eps": [o.eps for o in outcomes],
            }
        )
        return out

    # -- one iteration's direction: steps (a)-(d) ---------------------------------------------------

    def _direction(
        self,
        x_it: Tensor,
        label: int,
        targeted: bool,
        tentative: Tentative,
        queries: VideoQueries,
        ctx: AttackContext,
        sel: Tensor | None,
    ) -> tuple[Tensor, int]:
        """The rectified step direction `(T, 3, H, W)` and how many NES samples kept the wanted class on
        top: the tentative perturbation with each patch's sign set by NES; with `sel` (positions of the
        named frames) both cover those frames only, and the direction is exactly zero elsewhere."""
        shape = tuple(x_it.shape)
        if sel is None:
            h = tentative(x_it)
        else:  # surrogates look at the selected frames only; h is 0 elsewhere
            h = named.embed_frames(tentative(x_it[sel]).unsqueeze(0), sel, shape[0])[0]
        part = make_partition(self.partition, shape, self.grid, ctx.generator, x_it.device, frames=sel)
        estimate = nes_signs(
            queries.ask,
            x_it,
            h,
            part,
            label=label,
            targeted=targeted,
            sigma=self.sigma_for(targeted),
            population=self.population,
            batch_size=self.batch_size,
            generator=ctx.generator,
        )
        if estimate is None:
            raise OutOfQueries
        return part.expand(estimate.signs.unsqueeze(0), shape)[0] * h, estimate.kept

    # -- schedules -------------------------------------------------------------------------------------

    def _untargeted(
        self,
        queries: VideoQueries,
        x: Tensor,
        label: int,
        tentative: Tentative,
        threat: ThreatModel,
        ctx: AttackContext,
        index: int | None,
    ) -> Outcome:
        """Untargeted V-BAD on one video `(T, 3, H, W)`: PGD along rectified directions until the clean
        class is no longer top-1 on the 8-bit video."""
        eps = self.grid_eps()
        noise = torch.rand(x.shape, generator=ctx.generator, device=x.device, dtype=x.dtype) * 2 - 1
        sel, keep = named.selected_frames(threat.mask), None if threat.mask is None else threat.mask[0]
        x_it = apply_mask((x + noise * eps).clamp(0, 1), x, keep)  # unselected frames start (and stay) x
        lr = self.lr
        window: list[float] = []
        best, best_p = x, math.inf
        iterations = 0
        try:
            while True:
                checked = threat.quantize(x_it.unsqueeze(0), x.unsqueeze(0))[0]  # what the file would hold
                lp = queries.ask(checked.unsqueeze(0))[0]
                p_label = float(lp[label].exp())
                self._record(
                    ctx, index, queries, lp, label, loss=float(lp[label]), eps=self.eps, lr=lr, targeted=False
                )
                if p_label < best_p:
                    best, best_p = checked, p_label
                if int(lp.argmax()) != label:
                    return Outcome(checked, True, "success", iterations, self.eps, queries.used)
                window.append(p_label)
                if len(window) == _LR_WINDOW:
                    # the official schedule: a window in which the clean class lost ground anneals the step
                    if window[-1] <= window[0]:
                        lr = max(lr / 2, self.min_lr)
                    window = []
                direction, _ = self._direction(x_it, label, False, tentative, queries, ctx, sel)
                iterations += 1
                x_it = pgd_step(x_it, direction, lr, x, eps)
        except OutOfQueries:
            return Outcome(best, False, "budget", iterations, self.eps)

    def _targeted(
        self,
        queries: VideoQueries,
        x: Tensor,
        start: Tensor,
        target: int,
        tentative: Tentative,
        threat: ThreatModel,
        ctx: AttackContext,
        index: int | None,
    ) -> Outcome:
        """Targeted V-BAD (Algorithm 1) on one video `(T, 3, H, W)`: from `start` (target class, eps 1),
        shrink the eps ball around x while the target stays top-1, until eps reaches `eps`. With a frame
        mask the start is `start` on the selected frames and x on the others."""
        eps = self.grid_eps()
        sel, keep = named.selected_frames(threat.mask), None if threat.mask is None else threat.mask[0]
        x_it, cur_eps, iterations = apply_mask(start, x, keep).clone(), 1.0, 0
        sched = TargetedSchedule(self.lr, self.min_lr, self.delta_eps, base_lr=(self.lr, self.min_lr))
        try:
            self._check_start(queries, x_it, target, ctx, index)
            while True:
                if cur_eps <= eps + 1e-12:
                    judged = threat.quantize(x_it.unsqueeze(0), x.unsqueeze(0))[0]
                    if int(queries.ask(judged.unsqueeze(0))[0].argmax()) == target:
                        return Outcome(judged, True, "success", iterations, cur_eps, queries.used)
                direction, kept = self._direction(x_it, target, True, tentative, queries, ctx, sel)
                iterations += 1
                if kept == 0:
                    continue  # every NES sample lost the target: draw again (the official code does the same)
                # A zero direction still moves: at the start x_it is the target video itself, whose
                # features match the target's, so the tentative perturbation is 0 and only the shrinking
                # eps ball (the projection toward x) changes the video until the two differ.
                accepted = self._shrink_orpgd_step(queries, x, x_it, direction, cur_eps, target, sched)
                if accepted is not None:
                    x_it, cur_eps, lp, lr = accepted
                    self._record(
                        ctx,
                        index,
                        queries,
                        lp,
                        target,
                        loss=-float(lp[target]),
                        eps=cur_eps,
                        lr=lr,
                        targeted=True,
                    )
                if not sched.adapt():
                    return Outcome(x_it, False, "converged", iterations, cur_eps)
        except OutOfQueries:
            return Outcome(x_it, False, "budget", iterations, cur_eps)

    def _check_start(
        self, queries: VideoQueries, start: Tensor, target: int, ctx: AttackContext, index: int | None
    ) -> None:
        lp = queries.ask(start.unsqueeze(0))[0]
        self._record(
            ctx, index, queries, lp, target, loss=-float(lp[target]), eps=1.0, lr=self.lr, targeted=True
        )
        if int(lp.argmax()) != target:
            # with frames named, the start is the target video on those frames and the clean one elsewhere
            which = " (its named frames over the clean video's others)" if "frames" in ctx.info else ""
            raise BadParameterError(
                f"expected the starting point (target_video){which} to be classified as the target class "
                f"{target} by the model, got class {int(lp.argmax())} (p = {float(lp.exp().max()):.3f})"
            )

    def _shrink_orpgd_step(
        self,
        queries: VideoQueries,
        x: Tensor,
        x_it: Tensor,
        direction: Tensor,
        cur_eps: float,
        target: int,
        sched: TargetedSchedule,
    ) -> tuple[Tensor, float, Tensor, float] | None:
        """Algorithm 1's line search: try to step with eps shrunk by delta, halving the step down to the
        smallest; failing that, step at the current eps. The accepted `(video, eps, log-probs, step)`,
        or None when no candidate kept the target on top."""
        lr, delta = sched.max_lr, sched.delta
        while True:
            prop_eps = max(cur_eps - delta, self.grid_eps())
            cand = pgd_step(x_it, direction, lr, x, prop_eps)
            lp = queries.ask(cand.unsqueeze(0))[0]
            if int(lp.argmax()) == target:
                if delta > 0:
                    sched.shrunk()
                else:
                    sched.stepped(accepted=True)
                return cand, prop_eps, lp, lr
            if lr >= sched.min_lr * 2:
                lr /= 2
            elif delta > 0:
                delta, lr = 0.0, sched.max_lr  # cannot shrink: try a plain step at the current eps
            else:
                sched.stepped(accepted=False)
                return None

    def _record(
        self,
        ctx: AttackContext,
        index: int | None,
        queries: VideoQueries,
        lp: Tensor,
        label: int,
        *,
        loss: float,
        eps: float,
        lr: float,
        targeted: bool,
    ) -> None:
        # the video index only matters (and is only recorded) when several videos share the call
        row = {} if index is None else {"video": float(index)}
        ctx.record(
            **row,
            queries=queries.used,
            loss=loss,
            top1_prob=float(lp.exp().max()),
            label_prob=float(lp[label].exp()),
            # `label` is the clean class untargeted and the target targeted: fooled is leaving or
            # reaching it (where the curve marks the flip)
            fooled=float((int(lp.argmax()) == label) == targeted),
            eps=eps,
            lr=lr,
        )
        qm = queries.model
        if qm.max_queries is not None:
            ctx.step(qm.queries, qm.max_queries * qm.videos)


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
