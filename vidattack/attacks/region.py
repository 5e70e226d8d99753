"""Additive region attacks: Linf sign steps confined to a region of the video.

One family, one masked loop (`vidattack.attacks.loops.ascend` in a `LinfBall` whose mask is the
attack's `vidattack.threat.Region`); the attacks differ only in how the region is chosen and where the
steps start:

- `roa`, `af`, `spa`: rectangular occlusion, adversarial framing and salt-and-pepper, the additive
  counterparts of MultAV's region attacks (Lo and Patel, AVSS 2021, Sec. 3.1), with the paper's
  settings: eps 255/255 (any value inside the region), alpha 70/255, 5 steps. The region is searched
  (`vidattack.attacks.region_search`) and `frames` limits the video frames it may touch.
- `masked-pgd`, `frame-border`: the two region attacks of the adversarial-training paper's Table 4
  (Kinfu & Vidal, CVPRW 2022, Sec. 2) as armory runs them on IBM ART's `ProjectedGradientDescent` with
  a mask: a rectangle of area ratio r (sides = frame sides x sqrt(r), floored) at the same place on
  every frame, or a border of thickness t (the smaller root of 4 t^2 - 2 (W + H) t + r W H = 0,
  floored; armory's `FrameBorderPatch`). Defaults follow armory's UCF101 scenario: eps 1.0, eps_step
  0.02, max_iter 100, num_random_init 0, patch_ratio 0.1.

Each reports its region in `info["region"]`. Regions are in the video's own pixels, before the model
view resizes or crops, so a border that the model's centre crop cuts away cannot fool it.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, loss_and_grad
from vidattack.attacks.context import AttackContext
from vidattack.attacks.loops import LinfSteps, ascend
from vidattack.attacks.params import param
from vidattack.attacks.region_search import BorderParams, PixelParams, RectangleParams
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.threat import Border, LinfBall, Rectangle, Region, ThreatModel, border_width_for_ratio

MULTAV = "Lo and Patel, MultAV: Multiplicative Adversarial Videos, AVSS 2021, Sec. 3.1"
KINFU = "Kinfu & Vidal, Analysis and Extensions of Adversarial Training for Video Classification, CVPRW 2022"
GRAY = 0.5


@dataclass(kw_only=True)
class _MaskedLinf(Attack):
    """Sign steps in a Linf ball masked to a region: subclasses choose the region and the start."""

    stops_when_fooled = True
    batchable = True
    per_video_info = frozenset({"stopped_at", "region.top", "region.left"})  # a rectangle per video

    if TYPE_CHECKING:  # declared by the subclasses, with their own defaults and field order
        eps: float
        alpha: float | Literal["auto"]
        steps: int

    @abstractmethod
    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        """Where the attack may act (may use the model: a region search)."""

    def step_size(self) -> float:
        """The step size in [0, 1] units."""
        return float(self.alpha)

    def start(self, x: Tensor, threat: ThreatModel, ctx: AttackContext) -> Tensor:
        """Where the sign steps start (the clean video unless the attack says otherwise)."""
        return x

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return LinfBall(eps=self.eps, mask=self.region(model, x, criterion, ctx).mask(x))

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        start = self.start(x, threat, ctx)
        return ascend(model, x, criterion, threat, ctx, start=start, size=self.step_size(), steps=self.steps)


# -- roa, af, spa (MultAV's additive region settings) --------------------------------------------


@dataclass(kw_only=True)
class _MultAVRegion(_MaskedLinf):
    """The MultAV paper's additive region settings: anything inside the region, 5 steps of 70/255."""

    eps: float = param(1.0, "Linf budget inside the region, [0, 1] pixel units (1 = anything)", min=0, max=1)
    alpha: float = param(70 / 255, "step size in [0, 1] pixel units", min=0)
    steps: int = param(5, "number of iterations", min=0, max=100000)


def _squared_gradient(model: nn.Module, x: Tensor, criterion: Criterion) -> Tensor:
    _, _, grad = loss_and_grad(model, x, criterion.objective)
    return grad**2


@register_attack("roa")
@dataclass(kw_only=True)
class ROA(RectangleParams, _MultAVRegion):
    """Rectangular occlusion attack: a searched rectangle, started gray, then additive sign steps.

    Wu et al. (ICLR 2020) with the MultAV paper's video settings: a 30 x 30 rectangle (video pixels),
    eps 255/255, alpha 70/255, 5 steps. The rectangle's position is searched first with a gray (0.5)
    rectangle as the probe: `search=exhaustive` tries every position of a `stride` grid and keeps the
    largest loss; `gradient` ranks windows by the summed squared loss gradient and evaluates the `top_k`
    best; `random` draws a position (the MultAV authors' video code). `placement` shares one position
    across frames or picks one per frame. The rectangle then starts gray and takes sign steps.
    Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"Wu et al., Defending Against Physically Realizable Attacks, ICLR 2020; {MULTAV}"
    threat_summary = "additive, one rectangle per frame (searched), anything inside it"

    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        fill = LinfBall(eps=self.eps).project(torch.full_like(x, GRAY), x)
        sensitivity = _squared_gradient(model, x, criterion) if self.search == "gradient" else None
        return self.rectangle(model, x, criterion, ctx, fill=fill, sensitivity=sensitivity)

    def start(self, x: Tensor, threat: ThreatModel, ctx: AttackContext) -> Tensor:
        # the mask keeps the gray inside the rectangle
        return threat.project(torch.full_like(x, GRAY), x)


@register_attack("af")
@dataclass(kw_only=True)
class AF(BorderParams, _MultAVRegion):
    """Adversarial framing: additive sign steps inside a border of every frame (Zajac et al.).

    MultAV paper settings: border width 10 (video pixels), eps 255/255, alpha 70/255, 5 steps, from the
    clean video (no random start, so nothing can leak outside the border). Input `(N, T, 3, H, W)`.
    """

    paper = f"Zajac et al., Adversarial Framing for Image and Video Classification, AAAI 2019; {MULTAV}"
    threat_summary = "additive, a border of every frame, anything inside it"

    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        return self.border(ctx)


@register_attack("spa")
@dataclass(kw_only=True)
class SPA(PixelParams, _MultAVRegion):
    """Salt-and-pepper attack: additive sign steps on a few pixels per frame.

    MultAV paper settings: 100 pixels per frame (all channels), eps 255/255, alpha 70/255, 5 steps.
    Pixels are chosen by gradient magnitude at the clean video (default, stronger) or uniformly at
    random (`selection=random`, as the authors' code). The steps start from the clean pixels, or from
    black ones as in the authors' code (`init=black`). Input `(N, T, 3, H, W)` in [0, 1].
    """

    paper = f"{MULTAV} (SPA)"
    threat_summary = "additive, scattered pixels (100 per frame), anything at them"

    init: Literal["clean", "black"] = param(
        "clean", "start of the chosen pixels: clean, or black (authors' code)"
    )

    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        sensitivity = _squared_gradient(model, x, criterion) if self.selection == "gradient" else None
        return self.scattered(x, ctx, sensitivity=sensitivity)

    def start(self, x: Tensor, threat: ThreatModel, ctx: AttackContext) -> Tensor:
        return x if self.init == "clean" else threat.project(torch.zeros_like(x), x)


# -- masked-pgd, frame-border (armory's settings on ART PGD) ------------------------------------


@dataclass(kw_only=True)
class _ArmoryRegion(LinfSteps, _MaskedLinf):
    """Armory's masked PGD settings: ART PGD with a mask, eps 1.0, eps_step 0.02, 100 iterations."""

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
class MaskedPGD(_ArmoryRegion):
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

    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        h, w = x.shape[-2:]
        ph, pw = patch_size(h, w, self.ratio)

        def draw(gen: torch.Generator) -> tuple[int, int]:
            # both coordinates even when one is given, so `top` alone does not change where `left` lands
            rand_top = int(torch.randint(0, h - ph + 1, (1,), generator=gen, device=gen.device))
            return rand_top, int(torch.randint(0, w - pw + 1, (1,), generator=gen, device=gen.device))

        rand_top, rand_left = ctx.shared(draw)  # one rectangle for the whole batch
        top = rand_top if self.top is None else self.top
        left = rand_left if self.left is None else self.left
        if top + ph > h or left + pw > w:
            raise BadParameterError(
                f"expected the {ph} x {pw} patch inside the {h} x {w} frame, got top-left ({top}, {left})"
            )
        ctx.info["region"] = {"kind": "rectangle", "top": top, "left": left, "height": ph, "width": pw}
        return Region(Rectangle(ph, pw, top, left))


@register_attack("frame-border")
@dataclass(kw_only=True)
class FrameBorder(_ArmoryRegion):
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

    def region(self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext) -> Region:
        h, w = x.shape[-2:]
        border = Border(border_width_for_ratio(h, w, self.ratio) if self.width is None else self.width)
        area = float(border.mask(x.shape).float().mean())  # raises when the border does not fit
        ctx.info["region"] = {"kind": "border", "width": border.width, "area_ratio": area}
        return Region(border)
