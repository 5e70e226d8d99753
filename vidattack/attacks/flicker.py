"""Over-the-air flickering attack (Pony, Naeh & Mannor, CVPR 2021), as IBM ART's implementation.

The perturbation is one RGB offset per frame, uniform over the frame: a video-wide "flicker" that a
light source could produce. ART's `OverTheAirFlickeringPyTorch` minimizes

    L = max(0, min(l_m^2 / m, l_m)) + beta_0 (beta_1 D_thick + beta_2 D_rough1 + beta_2 D_rough2)

with l_m = (p_y - max_{k != y} p_k) (-1 if targeted) + m on the softmax probabilities, the thickness
D_thick = mean(P^2), and roughness terms D_rough1 = mean((P - roll(P, 1))^2) and
D_rough2 = mean((roll(P, 1) - 2 P + roll(P, -1))^2), rolls taken circularly over frames, by sign
descent on the offsets: P <- P - step * sign(grad_P L).

Differences from ART, all deliberate:

- Layout and range: ART wants `(N, F, H, W, C)` arrays in its estimator's range and applies softmax to
  the model's output itself; here videos are `(N, T, C, H, W)` in [0, 1] and the model returns
  log-probabilities, whose softmax is the probabilities again, so the loss is the same function.
- Clipping: ART keeps the clipped video as its state (a pixel clipped at 0 or 1 forgets the part of the
  offset that was cut off); here the offsets are the state and the video is clip(x + P), so every
  pixel of a frame and channel gets the same offset up to clipping, whatever the path. The two agree
  whenever no pixel reaches 0 or 1.
- The returned offsets are rounded to the 8-bit grid (whole levels), so the written file holds one
  uniform offset per frame and channel, and ART's last iterate is replaced by the least regularized
  adversarial iterate when the last one is not adversarial (`keep_best`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.context import AttackContext
from vidattack.attacks.counting import queries_of
from vidattack.attacks.loops import auto_alpha_linf
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.threat import ALL_FRAMES, LEVELS, FrameSpec, LinfBall, Region, ThreatModel, Unbounded

PONY = (
    "Pony, Naeh & Mannor, Over-the-Air Adversarial Flickering Attacks against Video Recognition Networks, "
    "CVPR 2021"
)


def flicker_margin_loss(log_probs: Tensor, criterion: Criterion, margin: float) -> Tensor:
    """ART's adversarial loss `(N,)` on probabilities: max(0, min(l_m^2 / margin, l_m)).

    l_m = (p_y - max over k of (p_k - [k = y])) + margin untargeted, and the difference negated when
    targeted (y the target): zero once the label trails (or the target leads) by `margin` in probability.
    """
    # ART applies softmax to the model output; on log-probabilities that is exp, done the same way
    probs = log_probs.softmax(dim=1)
    labels = criterion.labels.view(-1, 1).to(probs.device)
    onehot = torch.zeros_like(probs).scatter_(1, labels, 1.0)
    own = probs.gather(1, labels).squeeze(1)
    others = (probs - onehot).amax(dim=1)
    sign = -1.0 if criterion.targeted else 1.0
    lm = (own - others) * sign + margin
    return torch.clamp_min(torch.minimum(lm**2 / margin, lm), 0.0)


def flicker_regularizers(offsets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thickness and the two roughness terms, each `(N,)`, of offsets `(N, T, C, 1, 1)`.

    Means over frames and channels equal ART's means over every pixel when the offset is uniform.
    """
    right = torch.roll(offsets, 1, dims=1)  # frame t holds the offset of frame t - 1, circularly
    left = torch.roll(offsets, -1, dims=1)
    thick = offsets.pow(2).mean(dim=(1, 2, 3, 4))
    rough1 = (offsets - right).pow(2).mean(dim=(1, 2, 3, 4))
    rough2 = (right + left - 2 * offsets).pow(2).mean(dim=(1, 2, 3, 4))
    return thick, rough1, rough2


@register_attack("flicker")
@dataclass(kw_only=True)
class Flicker(Attack):
    """Over-the-air flickering: one RGB offset per frame, uniform over the frame (Pony et al.).

    x_adv = clip_[0,1](x + P), P of shape `(N, T, 3, 1, 1)` broadcast over H and W. Sign descent on
    ART's loss (module docstring): P <- P - alpha * sign(grad_P L), from P = 0, for `steps` iterations;
    optional Linf bound |P| <= eps after each step. Defaults are armory's UCF101 flicker scenario on
    ART's `OverTheAirFlickeringPyTorch`: alpha (ART's eps_step) 0.02, 100 steps, beta_0 1.0, beta_1 0.5,
    beta_2 0.5, margin 0.05, no bound (ART's own class defaults are eps_step 0.01 and 30 steps; the
    original authors' code bounded offsets to 0.2 in [0, 1] units, `eps=0.2`). `alpha=auto` applies only
    with a bound: 0.2 (eps + 1) in /255 units. `frames` limits which frames may flicker (ART's
    start_frame_index / num_frames). Input `(N, T, 3, H, W)` in [0, 1]. Reports the offsets in 8-bit
    levels, `info["offsets"]` (per sample, per sampled frame, RGB), and the frames allowed to flicker,
    `info["frames"]`.
    """

    paper = f"{PONY}; IBM ART OverTheAirFlickeringPyTorch; used in Kinfu & Vidal, CVPRW 2022, Table 4"
    threat_summary = "additive, one RGB offset per frame uniform over the frame, optional Linf bound"

    alpha: float | Literal["auto"] = param(
        0.02,
        "sign-step size on the offsets (ART eps_step; armory 0.02), or auto (needs eps)",
        min=0,
        min_exclusive=True,
    )
    steps: int = param(100, "number of iterations (ART max_iter; armory 100)", min=0, max=100000)
    beta_0: float = param(1.0, "weight of all regularization terms (lambda in the paper)", min=0)
    beta_1: float = param(0.5, "weight of the thickness term mean(P^2)", min=0)
    beta_2: float = param(0.5, "weight of each roughness term (first and second temporal differences)", min=0)
    margin: float = param(0.05, "probability margin of the loss (ART loss_margin)", min=0, min_exclusive=True)
    eps: float | None = param(
        None, "bound on |offset| in [0, 1] units (none: unbounded, as ART)", min=0, max=1
    )
    # param() returns a dataclasses.field and FrameSpec is frozen, so the default is never shared mutably
    frames: FrameSpec = param(  # noqa: RUF009
        ALL_FRAMES, "frames that may flicker: all, K (first K), random:K or a list 0,3,7"
    )
    keep_best: bool = param(
        True, "if the last iterate is not adversarial, return the least regularized adversarial one seen"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha == AUTO and self.eps is None:
            raise BadParameterError(
                "alpha: expected a number when eps is none (auto needs a bound), got 'auto'"
            )

    def step_size(self) -> float:
        """The step size in [0, 1] units, `auto` resolved."""
        if self.alpha == AUTO:
            return auto_alpha_linf(float(self.eps or 0.0))
        return float(self.alpha)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "alpha": self.step_size()}

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        # drawn once here (random:K uses the generator); run() reads the selection back from the mask
        sel = ctx.select_frames(self.frames)
        mask = None if bool(sel.all()) else Region(frames=sel).mask(x)
        if self.eps is None:
            return Unbounded(mask=mask)
        return LinfBall(eps=self.eps, mask=mask)

    def regularization(self, offsets: Tensor) -> Tensor:
        """beta_1 thickness + beta_2 (first + second roughness), `(N,)`, without beta_0."""
        thick, rough1, rough2 = flicker_regularizers(offsets)
        return self.beta_1 * thick + self.beta_2 * rough1 + self.beta_2 * rough2

    def optimize(
        self,
        model: nn.Module,
        x: Tensor,
        criterion: Criterion,
        ctx: AttackContext,
        allowed: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """ART's loop in float: `(last offsets, best adversarial offsets, found (N,) bool)`.

        Offsets are `(N, T, C, 1, 1)` in [0, 1] units; `allowed` `(T,)` bool marks frames that may flicker.
        """
        n, t, c = x.shape[:3]
        alpha = self.step_size()
        offsets = x.new_zeros(n, t, c, 1, 1)
        best = offsets.clone()
        best_reg = x.new_full((n,), math.inf)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        gate = None if allowed is None else allowed.to(x.dtype).view(1, t, 1, 1, 1)
        for i in range(self.steps):
            p = offsets.detach().requires_grad_(True)
            with torch.enable_grad():
                log_probs = model((x + p).clamp(0.0, 1.0))
                adv = flicker_margin_loss(log_probs, criterion, self.margin)
                reg = self.regularization(p)
                loss = adv + self.beta_0 * reg
                (grad,) = torch.autograd.grad(loss.sum(), p)
            # the iterate just evaluated is a candidate: keep the least regularized adversarial one
            better = criterion.is_adversarial(log_probs.detach()) & (reg.detach() < best_reg)
            best = torch.where(better.view(-1, 1, 1, 1, 1), offsets, best)
            best_reg = torch.where(better, reg.detach(), best_reg)
            found |= better
            if gate is not None:
                grad = grad * gate
            offsets = offsets - alpha * grad.sign()
            if self.eps is not None:
                offsets = offsets.clamp(-self.eps, self.eps)
            ctx.record(
                step=i,
                queries=queries_of(model),
                loss=float(loss.detach().mean()),
                adversarial_loss=float(adv.detach().mean()),
                regularization=float(reg.detach().mean()),
            )
            ctx.step(i + 1, self.steps)
        return offsets.detach(), best, found

    def _to_levels(self, offsets: Tensor) -> Tensor:
        levels = torch.round(offsets * LEVELS)
        if self.eps is not None:
            # whole levels toward zero where rounding would step past the bound
            cap = math.floor(self.eps * LEVELS + 1e-4)
            levels = levels.clamp(-cap, cap)
        return levels

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        allowed = None if threat.mask is None else threat.mask.reshape(-1)  # (T,) from (1, T, 1, 1, 1)
        last, best, found = self.optimize(model, x, criterion, ctx, allowed)
        levels = self._to_levels(last)
        used = ["last"] * x.shape[0]
        if self.keep_best and bool(found.any()):
            with torch.no_grad():
                ok = criterion.is_adversarial(model((x + levels / LEVELS).clamp(0.0, 1.0)))
            swap = found & ~ok
            levels = torch.where(swap.view(-1, 1, 1, 1, 1), self._to_levels(best), levels)
            used = ["best" if s else "last" for s in swap.tolist()]
        ctx.info["offsets"] = levels[..., 0, 0].tolist()  # (N, T, C) in 8-bit levels
        ctx.info["iterate"] = used
        return (x + levels / LEVELS).clamp(0.0, 1.0)
