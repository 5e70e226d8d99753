"""The one iterative loop of the gradient attacks, and the Linf PGD settings several attacks share.

`ascend` is foolbox's gradient-descent base with the geometry on the threat model: each step takes the
gradient of the criterion's objective, keeps it where the threat model's mask allows, turns it into
the threat model's unit step (`steepest`: sign for Linf-type sets, g / ||g||_2 for L2 ones), moves by
`size` (`advance`: added for additive sets, multiplied for MultAV's ratio bounds), then projects back
into the set. PGD, FGSM, MultAV, the region attacks, masked PGD and frame saliency all run it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import loss_and_grad
from vidattack.attacks.context import AttackContext
from vidattack.attacks.counting import CountingModel, counting_for, queries_of
from vidattack.attacks.params import AUTO
from vidattack.criteria import Criterion
from vidattack.precision import full_precision
from vidattack.threat import ThreatModel


def auto_alpha_linf(eps: float) -> float:
    """The adversarial-training paper's step-size rule for Linf PGD: alpha = 0.2 (eps + 1) in /255 units.

    It is the least-squares fit of the step sizes that maximized the loss in the paper's measurements
    (e.g. eps 4 -> alpha 1, eps 8 -> alpha 1.8).
    """
    return 0.2 * (eps * 255.0 + 1.0) / 255.0


def ascend(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    threat: ThreatModel,
    ctx: AttackContext,
    *,
    start: Tensor,
    size: float,
    steps: int,
) -> Tensor:
    """`steps` projected ascent steps on the criterion's objective from `start`, inside `threat`.

    `size` is the attack's step: a length for additive sets (alpha), a factor for ratio bounds
    (alpha_m). The gradient is restricted to the mask before it is normalized, so an L2 step's length
    is spent where pixels may change.

    With `ctx.stop_when_fooled` set to a margin, each video is judged after each step (but the last)
    on its iterate quantized to the 8-bit grid inside the threat model, as the file will hold it; once
    the criterion holds by that log-probability margin the video is done: its iterate is frozen and
    it takes no further forward or backward pass, while the rest of the batch goes on.
    `info["stopped_at"]` gets, per video, the number of steps after which it stopped (None: it took
    all of them). Every step works on the videos still going only, so a video's steps never depend
    on which others share its batch.
    """
    n = x.shape[0]
    margin = ctx.stop_when_fooled
    stopped_at: list[int | None] = [None] * n
    going = list(range(n))  # videos still stepping
    x_adv = start
    # Sign steps from the clean video that cannot leave the ball are clamped to [0, 1] alone (bit for
    # bit what the box gives them); a box-shaped set (Linf) is clamped to two tensors computed when a
    # step first needs them: one pass instead of `project`'s four. Both save passes over the video
    # that a bare forward+backward does not make.
    inside = threat.steps_inside(size, x.dtype) if start is x else 0
    # the views of the videos still going: the whole batch (no copies) until the first one stops
    xs, th, crit, it = x, threat, criterion, x_adv
    bx: tuple[Tensor, Tensor] | None = None
    going_index = torch.arange(n, device=x.device)
    for i in range(steps):
        with counting_for(model, going):
            log_probs, value, grad = loss_and_grad(model, it, crit.objective)
        # `fooled`: does this step's iterate (before quantization) already meet the criterion? The
        # curve marks where the label flipped from it, at no extra query
        fooled = crit.is_adversarial(log_probs)
        ctx.record_each(
            going, step=[i] * len(going), objective=value, queries=_queries(model, going), fooled=fooled
        )
        if th.mask is not None:
            grad = grad.mul_(th.mask)  # in place, as every use of the gradient here: it is ours
        # in place from the second step on: the iterate is ours then, and a fresh video-sized tensor per
        # step costs page faults the step can do without
        it = th.advance(it, xs, th.steepest(grad), size, inplace=i > 0)
        if i < inside:
            it = it.clamp_(0.0, 1.0)
        else:
            bx = th.box(xs) if bx is None and steps > 1 else bx
            it = it.clamp_(*bx) if bx is not None else th.project(it, xs)
        if len(going) < n:
            x_adv[going_index] = it
        else:
            x_adv = it
        ctx.step(i + 1, steps)
        if margin is None or i + 1 == steps:
            continue
        fooled, judged = _fooled(model, it, xs, crit, th, margin, going)
        if not bool(fooled.any()):
            continue
        # the judged (quantized) iterate is a stopping video's last record, from the check's own
        # forward pass: without it the curve would end before the step where its label flipped
        done = [going[j] for j in fooled.nonzero().flatten().tolist()]
        ctx.record_each(
            done,
            step=[i + 1] * len(done),
            objective=crit.objective(judged)[fooled],
            queries=_queries(model, done),
            fooled=crit.is_adversarial(judged)[fooled],
        )
        # from here on `it` is a gathered copy of the videos going, written back into `x_adv` each step
        keep = (~fooled).nonzero().flatten()
        for j in fooled.nonzero().flatten().tolist():
            stopped_at[going[j]] = i + 1
        going = [going[j] for j in keep.tolist()]
        if not going:
            break
        going_index = torch.tensor(going, device=x.device)
        xs, th, crit = x[going_index], threat.take(going_index), _take(criterion, going_index)
        bx = None if bx is None else (bx[0][keep], bx[1][keep])
        it = x_adv[going_index]
    if margin is not None:
        ctx.info["stopped_at"] = stopped_at
    return x_adv


def _queries(model: nn.Module, videos: list[int]) -> list[int]:
    if isinstance(model, CountingModel) and len(model.video_queries) > max(videos):
        return [model.video_queries[v] for v in videos]
    return [queries_of(model)] * len(videos)


def _take(criterion: Criterion, index: Tensor) -> Criterion:
    return dataclasses.replace(criterion, labels=criterion.labels[index.to(criterion.labels.device)])


def _fooled(
    model: nn.Module,
    it: Tensor,
    x: Tensor,
    criterion: Criterion,
    threat: ThreatModel,
    margin: float,
    videos: list[int],
) -> tuple[Tensor, Tensor]:
    """`(k,)` bool: is each video's iterate, quantized as the file will hold it, fooled by `margin`?
    With the log-probabilities `(k, K)` it was judged on."""
    # a decision on the result: float32 even inside a bf16/fp16 optimisation
    with torch.no_grad(), counting_for(model, videos), full_precision(it.device):
        log_probs = model(threat.quantize(it, x))
    return criterion.margin(log_probs) > margin, log_probs


class LinfSteps:
    """Linf PGD settings shared by attacks with `eps`, `alpha` (a number or `auto`), `steps` and
    `random_start` parameters: PGD-Linf itself, masked PGD and frame saliency. Mix in before `Attack`."""

    eps: float
    alpha: float | Literal["auto"]
    steps: int
    random_start: bool

    def step_size(self) -> float:
        """The step size in [0, 1] units, `auto` resolved."""
        return auto_alpha_linf(self.eps) if self.alpha == AUTO else float(self.alpha)

    def hyperparameters(self) -> dict[str, object]:
        return {**super().hyperparameters(), "alpha": self.step_size()}  # type: ignore[misc]

    def start(self, x: Tensor, threat: ThreatModel, ctx: AttackContext) -> Tensor:
        """The clean video, or a seeded uniform point of the threat model's ball."""
        return ctx.random_start(threat, x) if self.random_start else x

    def linf_pgd(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        """`steps` sign steps from `start` projected into `threat`."""
        start = self.start(x, threat, ctx)
        return ascend(model, x, criterion, threat, ctx, start=start, size=self.step_size(), steps=self.steps)
