"""Masked PGD and frame-border PGD: Linf PGD confined to a region of every frame.

The two region attacks of the adversarial-training paper's Table 4 (Kinfu & Vidal, CVPRW 2022, Sec. 2),
as run through the armory test bed on IBM ART's `ProjectedGradientDescent` with a mask:

- `masked-pgd`: one rectangle of area ratio r (height and width = frame height and width x sqrt(r),
  floored), at the same place on every sampled frame, all three channels;
- `frame-border`: a border of thickness t on every side of every frame, t the smaller root of
  4 t^2 - 2 (W + H) t + r W H = 0, floored (armory's `FrameBorderPatch`).

Inside the region the budget is eps = 1.0, so pixels may take any value; outside it nothing changes.
Defaults follow armory's UCF101 masked-PGD scenario (eps 1.0, eps_step 0.02, max_iter 100,
num_random_init 0, patch_ratio 0.1). Regions are in the video's own pixels, before the model view
resizes or crops, so a border that the model's centre crop cuts away cannot fool it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, AttackContext
from vidattack.attacks.params import param
from vidattack.attacks.pgd import LinfSteps
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.regions import border_mask, border_width_for_ratio, rectangle_mask
from vidattack.threat import LinfBall, ThreatModel

KINFU = "Kinfu & Vidal, Analysis and Extensions of Adversarial Training for Video Classification, CVPRW 2022"


@dataclass(kw_only=True)
class _RegionPGD(LinfSteps, Attack):
    """Linf PGD inside a region mask; subclasses choose the region (`_region`)."""

    eps: float = param(
        1.0, "Linf budget inside the region, [0, 1] pixel units (1.0: any value)", min=0, max=1
    )
    alpha: float | Literal["auto"] = param(
        0.02,
        "step size (armory's eps_step), or auto = 0.2 (eps + 1) in /255 units",
        min=0,
        min_exclusive=True,
    )
    steps: int = param(100, "number of PGD iterations (armory's max_iter)", min=0, max=100000)
    random_start: bool = param(False, "start from a uniform random point of the region's eps ball (ART: off)")

    def _region(self, x: Tensor, ctx: AttackContext) -> Tensor:
        raise NotImplementedError

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps, mask=self._region(x, ctx).to(x.device))

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return self.linf_pgd(model, x, criterion, threat, ctx)


def patch_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """Patch height and width for an area ratio: each side times sqrt(ratio), floored (at least 1).

    Flooring follows armory's `PGDPatch` (`int(side * ratio ** 0.5)`).
    """
    if not 0 < ratio <= 1:
        raise BadParameterError(f"expected a patch area ratio in (0, 1], got {ratio}")
    s = math.sqrt(ratio)
    # the small epsilon keeps ratio = 0.25 on a 112 frame at exactly 56 despite float error
    return max(1, math.floor(height * s + 1e-9)), max(1, math.floor(width * s + 1e-9))


@register_attack("masked-pgd")
@dataclass(kw_only=True)
class MaskedPGD(_RegionPGD):
    """Masked PGD: Linf PGD inside one rectangle, the same rectangle on every frame.

    The rectangle covers an area ratio `ratio` of the frame: height = floor(H sqrt(r)), width =
    floor(W sqrt(r)). Its top-left corner is (`top`, `left`) in the video's pixels, or drawn uniformly
    with the attack's seed when not given (the paper: "a random top-left position"; armory's
    scenario fixed it at 0, 0). Each step: x <- Proj(x + alpha * sign(grad_x L)), the gradient and the
    change restricted to the rectangle, then clipped to [0, 1] and to the eps ball around the clean
    video. Defaults (armory's UCF101 masked-PGD scenario on ART PGD): eps 1.0, alpha 0.02, 100 steps,
    no random start, r = 0.1. Input `(N, T, 3, H, W)` in [0, 1]; one rectangle for the whole batch.
    The chosen rectangle is reported in `info["region"]`.
    """

    paper = f"{KINFU}, Sec. 2 (masked PGD); armory PGDPatch on IBM ART ProjectedGradientDescent"
    threat_summary = "additive, one rectangle (area ratio r) at the same place on every frame, Linf eps"

    ratio: float = param(
        0.1,
        "patch area as a share of the frame (side = frame side x sqrt(ratio))",
        min=0,
        max=1,
        min_exclusive=True,
    )
    top: int | None = param(None, "patch top row in video pixels (none: random, seeded)", min=0)
    left: int | None = param(None, "patch left column in video pixels (none: random, seeded)", min=0)

    def _region(self, x: Tensor, ctx: AttackContext) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = patch_size(h, w, self.ratio)
        gen = ctx.generator
        # draw both coordinates even when one is given, so `top` alone does not change where `left` lands
        rand_top = int(torch.randint(0, h - ph + 1, (1,), generator=gen, device=gen.device))
        rand_left = int(torch.randint(0, w - pw + 1, (1,), generator=gen, device=gen.device))
        top = rand_top if self.top is None else self.top
        left = rand_left if self.left is None else self.left
        if top + ph > h or left + pw > w:
            raise BadParameterError(
                f"expected the {ph} x {pw} patch inside the {h} x {w} frame, got top-left ({top}, {left})"
            )
        ctx.info["region"] = {"kind": "rectangle", "top": top, "left": left, "height": ph, "width": pw}
        return rectangle_mask(tuple(x.shape), top, left, ph, pw)


@register_attack("frame-border")
@dataclass(kw_only=True)
class FrameBorder(_RegionPGD):
    """Frame-border PGD: Linf PGD inside a border of every frame (adversarial framing).

    The border thickness t covers an area ratio `ratio` of the frame: the smaller root of
    4 t^2 - 2 (W + H) t + r W H = 0, floored (armory's `FrameBorderPatch`; 2 pixels for r = 0.1 on
    112 x 112), or `width` pixels when given. Same update as `masked-pgd`; defaults eps 1.0, alpha
    0.02, 100 steps, no random start, r = 0.1. Input `(N, T, 3, H, W)` in [0, 1]. The border is
    reported in `info["region"]`.
    """

    paper = f"{KINFU}, Sec. 2 (frame border); armory FrameBorderPatch on IBM ART ProjectedGradientDescent"
    threat_summary = "additive, a border of thickness t (from area ratio r) on every frame, Linf eps"

    ratio: float = param(0.1, "border area as a share of the frame", min=0, max=1)
    width: int | None = param(None, "border thickness in video pixels (none: from ratio)", min=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.ratio < 1:
            raise BadParameterError(f"ratio: expected a value in (0, 1), got {self.ratio:g}")

    def _region(self, x: Tensor, ctx: AttackContext) -> Tensor:
        h, w = x.shape[-2:]
        t = border_width_for_ratio(h, w, self.ratio) if self.width is None else self.width
        mask = border_mask(tuple(x.shape), t)
        ctx.info["region"] = {
            "kind": "border",
            "width": t,
            "area_ratio": float(mask.float().mean()),
        }
        return mask
