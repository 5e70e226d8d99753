"""Frame saliency attack (Inkawhich et al. 2018), with IBM ART's `FrameSaliencyAttack` semantics.

The attack decides *which frames* to perturb: as few as it needs, in order of decreasing saliency
(mean absolute loss gradient over a frame's pixels). The perturbation of each frame comes from an
inner Linf PGD. Three modes, as in ART:

- `one-shot`: the inner PGD on the whole video (every frame perturbed);
- `iterative`: run the inner PGD once on the whole video; rank frames by saliency at the clean video;
  copy adversarial frames into the clean video one at a time in that order until the prediction
  flips;
- `iterative-refresh`: perturb only the most salient frame with the inner PGD, copy it in; then
  recompute the saliency at the current video (frames already taken excluded) and run the inner PGD
  again on the next frame alone, starting from the current video; repeat until the prediction flips.

Unselected frames are bit-identical to the input: once the frames are chosen, `run` asks the template
to narrow the threat model to them (`ctx.restrict`), so quantization cannot touch any other frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack, loss_and_grad
from vidattack.attacks.context import AttackContext
from vidattack.attacks.loops import LinfSteps
from vidattack.attacks.params import param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.threat import LinfBall, ThreatModel

INKAWHICH = (
    "Inkawhich et al., Adversarial Attacks for Optical Flow-Based Action Recognition Classifiers, "
    "arXiv:1811.11875 (2018)"
)


def frame_saliency(model: nn.Module, x: Tensor, criterion: Criterion) -> Tensor:
    """Saliency of each frame, `(N, T)`: the mean |d objective / d x| over the frame's channels and pixels.

    As ART's `FrameSaliencyAttack`, which ranks frames by the mean absolute gradient of the
    classifier's loss (cross-entropy of the label, or of the target when targeted).
    """
    _, _, grad = loss_and_grad(model, x, criterion.objective)
    return grad.abs().mean(dim=(2, 3, 4))


@register_attack("frame-saliency")
@dataclass(kw_only=True)
class FrameSaliency(LinfSteps, Attack):
    """Frame saliency attack: perturb as few frames as needed, most salient first (Inkawhich et al.).

    Modes `one-shot`, `iterative` (default, as ART and armory) and `iterative-refresh` follow IBM ART's
    `FrameSaliencyAttack` (see the module docstring). The inner attack is Linf PGD from the clean video
    (ART `ProjectedGradientDescent` with num_random_init 0): x <- Proj(x + alpha * sign(grad_x L)).
    Defaults are armory's UCF101 frame-saliency scenario: eps 0.015 (about 3.8/255; 3 levels once on
    the 8-bit grid), alpha 0.001, 100 steps. Saliency of a frame = mean |grad_x L| over its pixels at the
    clean video (iterative) or at the current partly adversarial one (refresh); ties are broken by frame
    order. Deliberate difference from ART: whether the prediction has flipped is judged on the video
    quantized to 8 bits, as the written file will hold it, so the frames counted are the frames the
    file needs. Input `(N, T, 3, H, W)` in [0, 1]. Reports per sample `info["frames_perturbed"]` (count),
    `info["frame_order"]` (video frame numbers perturbed, in order) and `info["saliency"]` (per sampled
    frame, at the clean video).
    """

    paper = f"{INKAWHICH}; IBM ART FrameSaliencyAttack; used in Kinfu & Vidal, CVPRW 2022, Table 4"
    threat_summary = "additive Linf on the fewest frames that flip the prediction, most salient first"

    mode: Literal["one-shot", "iterative", "iterative-refresh"] = param(
        "iterative",
        "one-shot | iterative | iterative-refresh (ART's semantics)",
        choices=("one-shot", "iterative", "iterative-refresh"),
    )
    eps: float = param(
        0.015, "Linf budget of the inner PGD, [0, 1] pixel units (armory: 0.015)", min=0, max=1
    )
    alpha: float | Literal["auto"] = param(
        0.001,
        "inner PGD step size (armory: 0.001), or auto = 0.2 (eps + 1) in /255 units",
        min=0,
        min_exclusive=True,
    )
    steps: int = param(100, "inner PGD iterations (armory: 100)", min=0, max=100000)
    random_start: bool = param(
        False, "start the inner PGD from a uniform random point of the eps ball (ART: off)"
    )

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        # the frame mask is only known after the search; run() asks the template to narrow it
        return LinfBall(eps=self.eps)

    def _pgd(
        self, model: nn.Module, ref: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        return self.linf_pgd(model, ref, criterion, threat, ctx)

    def _fooled(
        self, model: nn.Module, x_adv: Tensor, x: Tensor, criterion: Criterion, threat: ThreatModel
    ) -> Tensor:
        with torch.no_grad():
            return criterion.is_adversarial(model(threat.quantize(x_adv, x)))

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        n, t = x.shape[:2]
        saliency = frame_saliency(model, x, criterion)  # (N, T)
        ctx.info["saliency"] = saliency.tolist()
        if self.mode == "one-shot":
            ctx.info["frames_perturbed"] = [t] * n
            ctx.info["frame_order"] = [list(ctx.frame_ids)] * n
            return self._pgd(model, x, criterion, threat, ctx)
        if self.mode == "iterative":
            x_adv, chosen = self._iterative(model, x, criterion, threat, ctx, saliency)
        else:
            x_adv, chosen = self._refresh(model, x, criterion, threat, ctx, saliency)
        ctx.info["frames_perturbed"] = [len(c) for c in chosen]
        ctx.info["frame_order"] = [[ctx.frame_ids[i] for i in c] for c in chosen]
        selected = torch.zeros(n, t, dtype=torch.bool, device=x.device)
        for k, c in enumerate(chosen):
            selected[k, c] = True
        ctx.restrict(selected.view(n, t, 1, 1, 1))
        return x_adv

    def _iterative(
        self,
        model: nn.Module,
        x: Tensor,
        criterion: Criterion,
        threat: ThreatModel,
        ctx: AttackContext,
        saliency: Tensor,
    ) -> tuple[Tensor, list[list[int]]]:
        n, t = x.shape[:2]
        x_full = self._pgd(model, x, criterion, threat, ctx)
        # stable: frames the loss ignores (zero saliency) keep their temporal order
        order = torch.argsort(-saliency, dim=1, stable=True)  # (N, T)
        x_adv = x.clone()
        chosen: list[list[int]] = [[] for _ in range(n)]
        failing = ~self._fooled(model, x_adv, x, criterion, threat)
        for i in range(t):
            if not bool(failing.any()):
                break
            for k in failing.nonzero().flatten().tolist():
                f = int(order[k, i])
                x_adv[k, f] = x_full[k, f]
                chosen[k].append(f)
            failing = ~self._fooled(model, x_adv, x, criterion, threat)
        return x_adv, chosen

    def _refresh(
        self,
        model: nn.Module,
        x: Tensor,
        criterion: Criterion,
        threat: ThreatModel,
        ctx: AttackContext,
        saliency: Tensor,
    ) -> tuple[Tensor, list[list[int]]]:
        n, t = x.shape[:2]
        total = t * max(self.steps, 1)
        done = 0

        def progress(d: int, _total: int) -> None:
            ctx.step(min(done + d, total), total)

        sub = dataclasses.replace(ctx, progress=progress)
        taken = torch.zeros(n, t, dtype=torch.bool, device=x.device)
        chosen: list[list[int]] = [[] for _ in range(n)]
        x_adv = x.clone()
        failing = ~self._fooled(model, x_adv, x, criterion, threat)
        score = saliency
        for _ in range(t):
            if not bool(failing.any()):
                break
            nxt = score.masked_fill(taken, float("-inf")).argmax(dim=1)  # (N,) most salient frame not taken
            frame = torch.zeros(n, t, dtype=torch.bool, device=x.device)
            frame[torch.arange(n), nxt] = True
            # the inner PGD starts from, and is projected around, the current video: earlier frames keep
            # their perturbation and only the new frame moves (ART passes x_adv as the new clean input)
            one = LinfBall(eps=self.eps, mask=frame.view(n, t, 1, 1, 1))
            x_new = self._pgd(model, x_adv, criterion, one, sub)
            done += max(self.steps, 1)
            for k in failing.nonzero().flatten().tolist():
                f = int(nxt[k])
                x_adv[k, f] = x_new[k, f]
                chosen[k].append(f)
            taken |= frame
            failing = ~self._fooled(model, x_adv, x, criterion, threat)
            if bool(failing.any()) and not bool(taken.all()):
                score = frame_saliency(model, x_adv, criterion)
        ctx.step(total, total)
        return x_adv, chosen
