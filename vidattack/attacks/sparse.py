"""Sparse adversarial perturbations for videos: the l2,1-regularized attack of Wei, Zhu and Su (AAAI 2019).

The attack minimizes, over an additive perturbation E restricted to a temporal mask M,

    lam * ||M * E||_{2,1} - log(1 - p_y)          (untargeted, paper eq. 1 and 3)
    lam * ||M * E||_{2,1} - log(p_target)         (targeted: the authors' code; eq. 4 prints
                                                   + log(1 - p_target), see `SparseL21`)

where p is the model's video-level probability. The l2,1 norm is the l1 norm across frames of each
frame's own norm. It is minimized by proximal gradient: a gradient step on the fooling loss, then the
group soft-threshold of each frame (`prox_l21`), which sets a frame to exactly zero when its fooling
gradient cannot pay for its norm. The perturbation becomes temporally sparse, and in a CNN+RNN model
what was added to early frames propagates to the clean frames after them.

Choices where the paper and the official code left one (see the class docstring for the reasons):

- the frame norm inside the regularizer is the per-frame RMS (the official code's), so `lam` does not
  depend on the frame size; the reported `l21` is the paper's sum of true per-frame L2 norms;
- proximal steps instead of Adam on the whole objective, so frames reach exact zeros from the norm
  alone (the paper's Adam only approaches them);
- the model is always evaluated on the 8-bit video the file will hold (a straight-through rounding),
  and the attack returns the least-penalized iterate that fools the model on it;
- "propagation" mode optimizes the first N frames on a shortened video (the paper's time saving).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.context import AttackContext
from vidattack.attacks.params import param
from vidattack.attacks.registry import register_attack
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.threat import ALL_FRAMES, LEVELS, FrameSpec, ThreatModel, Unbounded, frame_mask_5d

WEI = "Wei, Zhu, Su, Sparse Adversarial Perturbations for Videos, AAAI 2019"
_SQRT_FLOOR = 1e-12  # keeps d sqrt / dE finite if a whole frame reaches exactly zero


def frame_rms(delta: Tensor) -> Tensor:
    """Root-mean-square of each frame of a perturbation `(N, T, C, H, W)` -> `(N, T)`."""
    return (delta.pow(2).flatten(2).mean(dim=2) + _SQRT_FLOOR).sqrt()


def sparse_penalty(delta: Tensor, norm: Literal["l21", "l2"]) -> Tensor:
    """The regularizer `(N,)` in RMS units: sum_t RMS(E_t) (l2,1) or sqrt(sum_t RMS(E_t)^2) (l2).

    Both are the paper's norms divided by sqrt(C H W); they agree when a single frame is perturbed.
    """
    rms = frame_rms(delta)  # (N, T)
    return rms.sum(dim=1) if norm == "l21" else (rms.pow(2).sum(dim=1) + _SQRT_FLOOR).sqrt()


def fooling_loss(log_probs: Tensor, labels: Tensor, targeted: bool) -> Tensor:
    """The classification term `(N,)`: -log(1 - p_y) untargeted (the paper's eq. 1), -log(p_target)
    targeted (the authors' code; the paper's eq. 4 prints + log(1 - p_target), see `SparseL21`).

    Computed from log-probabilities without the paper's `+ 1e-6` guard: log(1 - p_y) is the logsumexp
    of the other classes' log-probabilities, which is exact where 1 - p_y underflows. The guarded form
    is flat (no gradient) once 1 - p_y, or p_target, is far below 1e-6, which is where a confident
    model starts (a clean video at p_y = 1 - 1e-9); elsewhere the two agree to within 1e-6 / (1 - p).
    """
    idx = labels.view(-1, 1).to(log_probs.device)
    if targeted:
        return -log_probs.gather(1, idx).squeeze(1)
    others = log_probs.scatter(1, idx, float("-inf"))
    return -torch.logsumexp(others, dim=1)


def straight_through_quantize(x: Tensor) -> Tensor:
    """Round to the 8-bit grid in the forward pass, identity in the backward pass.

    The model then judges exactly the video a file will hold, while the gradient still reaches
    perturbations smaller than half a grey level (which plain rounding would zero).
    """
    return x + (torch.round(x * LEVELS) / LEVELS - x).detach()


def per_frame_l2(delta: Tensor) -> Tensor:
    """True L2 norm of each frame of `(N, T, C, H, W)` -> `(N, T)`, in [0, 1] pixel units."""
    return delta.flatten(2).norm(dim=2)


@dataclass(kw_only=True)
class L21Unbounded(Unbounded):
    """Pixel range and frame mask only, measured in the paper's l2,1 norm: sum over frames of each
    frame's L2 norm, in [0, 1] pixel units (the attack's budget is its penalty, not a hard bound)."""

    name: str = "l21"

    def measure(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return per_frame_l2(x_adv - x).sum(dim=1)


def prox_l21(delta: Tensor, tau: Tensor) -> Tensor:
    """The proximal operator of `tau_t * ||E_t||_2` summed over frames: the group soft-threshold.

    `delta` is `(N, T, C, H, W)`, `tau` `(N, T)` (or broadcastable) in the same units as the frames'
    L2 norms. Each frame is scaled by max(0, 1 - tau_t / ||E_t||_2): a frame whose norm is at most its
    threshold becomes exactly zero, the others shrink toward zero along their own direction (Yuan and
    Lin 2006; Parikh and Boyd, Proximal Algorithms, 2014, sec. 6.5.4).
    """
    norms = delta.flatten(2).norm(dim=2)  # (N, T)
    scale = (1 - tau / norms.clamp_min(1e-30)).clamp_min(0.0)
    return delta * scale.view(*scale.shape, 1, 1, 1)


def prox_l2(delta: Tensor, tau: Tensor) -> Tensor:
    """The proximal operator of `tau * ||E||_2` over each whole perturbation `(N, ...)`, `tau` `(N,)`.

    The same soft-threshold as `prox_l21` with one group per video instead of one per frame, so it
    shrinks every frame by the same factor and zeroes all of them or none: no temporal sparsity.
    """
    norms = delta.flatten(1).norm(dim=1)  # (N,)
    scale = (1 - tau / norms.clamp_min(1e-30)).clamp_min(0.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


def _on_grid(x: Tensor) -> Tensor:
    return torch.round(x * LEVELS) / LEVELS


def _cut_short(model: nn.Module, x: Tensor, keep: int) -> str:
    """Why `model` cannot score the video cut to its first `keep` sampled frames, or "" if it can.

    Asks the model itself (one query): a `BoundModel` with a one-clip plan scores a shorter video if its
    network takes the shorter clip (CNN+RNN and globally pooled 3D CNNs do; fixed-length ones do not).
    """
    if keep >= x.shape[1]:
        return "nothing to cut"
    try:
        with torch.no_grad():
            out = model(x[:, :keep])
    except (RuntimeError, ValueError) as e:
        return f"the model rejects a {keep}-frame video ({str(e).splitlines()[0][:160]})"
    if out.dim() != 2 or out.shape[0] != x.shape[0]:
        return f"unexpected output shape {tuple(out.shape)} on the shortened video"
    return ""


@dataclass
class _Optimization:
    best: Tensor  # (N, K, C, H, W): the least-penalized iterate that fooled the model
    found: Tensor  # (N,) bool: whether any iterate fooled it
    final: Tensor  # (N, K, C, H, W): the last iterate
    iterations: int
    seconds: float
    lam: Tensor  # (N,): the penalty weight at the end, after halvings


def _prune_frames(model: nn.Module, x: Tensor, x_adv: Tensor, criterion: Criterion) -> list[list[int]]:
    """Positions of perturbed frames that can be reset to clean, weakest (lowest RMS) first, while the
    8-bit video stays adversarial. One forward per perturbed frame plus one."""
    pruned: list[list[int]] = []
    for b in range(x.shape[0]):
        one = type(criterion)(criterion.labels[b : b + 1])
        cur = _on_grid(x_adv[b : b + 1])
        dropped: list[int] = []
        if bool(one.is_adversarial(model(cur))[0]):
            rms = (cur - x[b : b + 1]).pow(2).flatten(2).mean(dim=2)[0]  # (T,)
            for t in rms.argsort().tolist():
                if float(rms[t]) == 0.0:
                    continue
                cand = cur.clone()
                cand[:, t] = x[b : b + 1, t]
                if bool(one.is_adversarial(model(cand))[0]):
                    cur = cand
                    dropped.append(t)
        pruned.append(sorted(dropped))
    return pruned


@register_attack("sparse")
@dataclass(kw_only=True)
class SparseL21(Attack):
    """Sparse video attack: proximal gradient on the fooling loss + lam * ||M * E||_{2,1} (Wei et al. 2019).

    Minimizes `fooling_loss(model(X + M * E)) + lam * sum_t RMS(M_t * E_t)` over an additive perturbation
    E of the sampled frames `(N, T, 3, H, W)` in [0, 1] (the paper's eq. 1 and 3; eq. 4 when targeted).

    - Fooling loss: untargeted -log(1 - p_y) (the paper's eq. 1, written as the logsumexp of the other
      classes' log-probabilities, see `fooling_loss`); targeted -log(p_target), the authors' code.
      The paper's eq. 4 prints `+ log(1 - p_target)` (it reuses eq. 1's loss with the sign flipped);
      we use -log(p_target) because it is the cross-entropy the authors' code minimizes, and because
      log(1 - p_target) flattens out (gradient -> 0) once p_target is small, which is exactly where a
      targeted attack starts, whereas -log(p_target) keeps a unit gradient on the target's logit.
    - Optimizer: proximal gradient (ISTA for the group lasso; Yuan and Lin 2006; Parikh and Boyd,
      Proximal Algorithms, 2014, sec. 6.5.4). Each iteration takes a gradient step on the fooling loss
      alone, clips X + E to [0, 1], then applies the proximal operator of the penalty: per frame for
      l2,1, `E_t <- E_t * max(0, 1 - s_t * lam' / ||E_t||_2)` (`prox_l21`), with lam' = lam / sqrt(3 H W)
      since the penalty is in RMS units. A frame whose fooling gradient is too weak to pay for its norm
      is set to exactly zero, which is where temporal sparsity comes from (the paper's Adam on the
      smooth-ed penalty only approaches zero; Fig. 4's "almost zeros"). With `norm=l2` the prox of the
      whole perturbation's norm (`prox_l2`) shrinks every frame by one factor: no frame becomes zero
      before all do, the paper's non-sparse comparison.
    - Step size `s_t` in the threshold: with `optimizer=sgd` it is `lr`, the textbook ISTA step. With
      `optimizer=adam` (default) the gradient step is Adam's (per-pixel step lr * m / sqrt(v)), and a
      frame's threshold uses the step Adam gives a gradient of that frame's RMS size,
      `s_t = lr / sqrt(mean_t v)`: the proximal step of a preconditioner that is constant on each frame,
      so lam keeps its meaning (weight of the penalty against the fooling loss) whatever the gradient
      scale. Measured on two tiny-lrcn clips (move_left_1, zoom_in_1; lam 100, all frames): ISTA with
      lr 0.3 left 69% / 69% of the frames clean (MAP 0.06 / 0.04 grey levels), lr 3 44% / 69%, lr 30
      56% / 44% at MAP 2.3 / 1.3; Adam with lr 1e-2 75% / 75% (MAP 0.20 / 0.16). ISTA is as sparse
      when its lr suits the model, but that lr is in pixels per unit of gradient and moves 100x with
      the model's gradient scale; Adam's lr is in pixels and one value works for the bundled models
      and the toy ones in the tests, so Adam is the default.
    - Stopping: judged on the 8-bit video (straight-through rounding), the attack keeps the iterate
      with the smallest penalty (of the rounded perturbation) among those that fool the model, and stops
      once it has fooled and that penalty has not fallen by 0.1% for `patience` iterations, or at
      `max_iter`. Not fooled, it returns the last iterate.
    - Penalty weight: while a video has not been fooled yet, its lam is halved every `patience`
      iterations (a one-sided form of Carlini and Wagner's search over the constant), so a lam too
      strong for one video costs iterations, not the attack. The report gives `lam_final`.
    - Frame norm: the per-frame RMS, as the official code, i.e. the paper's L2 divided by sqrt(3 H W), so
      one `lam` fits every resolution. The report's `l21` is the paper's true sum of per-frame L2 norms.
    - `frames` is the temporal mask M in video frame numbers: `all` (the l2,1 norm picks the frames),
      `K` (the first K frames), `random:K` (seeded) or a list `0,3,7`. Frames outside M are returned
      bit for bit unchanged.
    - `propagate=N` is the paper's propagation method: optimize only the first N frames, with the l2
      norm (`norm=auto`), on the video cut to those frames when the model scores a shorter video (a
      one-clip `BoundModel` whose network takes shorter clips), then judge the whole video.
    - `prune=True` afterwards resets perturbed frames to clean, weakest first, while the video stays
      fooled (one forward per frame): not in the paper, off by default, reported in `frames_pruned`.

    Defaults were measured on the bundled `tiny-lrcn` (16 frames of 112 x 112, all 19 examples; see
    `benchmarks/sparse_table.py` and its results file).
    """

    paper = f"{WEI}, eq. 1-4 (l2,1 regularizer, temporal mask, propagation)"
    threat_summary = "additive, frames of a temporal mask only, no hard bound (l2,1 penalty)"

    lam: float = param(100.0, "weight of the l2,1 (or l2) penalty, in per-frame RMS units", min=0)
    lr: float = param(1e-2, "step size in [0, 1] pixel units (Adam's lr, or ISTA's with sgd)", min=0)
    optimizer: Literal["adam", "sgd"] = param(
        "adam", "gradient step on the fooling loss: adam, or sgd (plain ISTA); a prox step follows"
    )
    max_iter: int = param(
        500,
        "maximum number of iterations (paper: 100; more here because the run goes on while the penalty still falls, see patience)",
        min=1,
        max=100000,
    )
    patience: int = param(
        100, "once fooled, stop after this many iterations without the penalty falling by 0.1%", min=1
    )
    # param() returns a dataclasses.field and FrameSpec is frozen, so the default is never shared mutably
    frames: FrameSpec = param(  # noqa: RUF009
        ALL_FRAMES, "temporal mask: all, K (first K frames), random:K, or a list 0,3,7"
    )
    norm: Literal["auto", "l21", "l2"] = param(
        "auto", "penalty: l21 (sparse), l2 (paper's comparison); auto = l21, or l2 with propagate"
    )
    propagate: int = param(0, "propagation mode: perturb only the first N frames (0 = off)", min=0)
    init: float = param(
        0.0, "initial value of every element of E (paper: 1e-4; the prox needs none)", min=0, max=1
    )
    prune: bool = param(False, "afterwards reset the weakest frames to clean while the video stays fooled")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.propagate and str(self.frames).strip().lower() not in ("", "all"):
            raise BadParameterError(
                f"expected frames=all with propagate={self.propagate} (it sets them), got {self.frames!r}"
            )

    def penalty_norm(self) -> Literal["l21", "l2"]:
        """The norm in use, `auto` resolved."""
        if self.norm == "auto":
            return "l2" if self.propagate else "l21"
        return self.norm

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "norm": self.penalty_norm()}

    def allowed_frames(self, ctx: AttackContext, t: int) -> Tensor:
        """`(T,)` bool: the sampled frames the perturbation may touch."""
        if self.propagate and self.propagate > ctx.num_frames:
            raise BadParameterError(f"expected propagate <= {ctx.num_frames} frames, got {self.propagate}")
        # propagate=N perturbs the first N frames; the choice is reported under info["frames"]
        return ctx.select_frames(str(self.propagate) if self.propagate else self.frames)

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        allowed = self.allowed_frames(ctx, x.shape[1])
        return L21Unbounded(mask=frame_mask_5d(allowed, x))

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        if threat.mask is None:
            raise BadParameterError("expected a frame mask from SparseL21.threat_model, got none")
        pos = threat.mask.view(-1).nonzero().flatten()  # sampled positions E covers
        norm = self.penalty_norm()
        labels = criterion.labels.to(x.device)

        opt_x = x
        propagation: dict[str, Any] = {}
        if self.propagate:
            # the first N video frames are the first len(pos) sampled positions (frame ids are sorted)
            why = _cut_short(model, x, len(pos))
            if not why:
                opt_x = x[:, : len(pos)]
            propagation = {"frames": self.propagate, "shortened_video": not why}
            if why:
                propagation["not_shortened_because"] = why
            propagation["frames_forwarded"] = int(opt_x.shape[1])

        x_sel = opt_x.index_select(1, pos)  # (N, K, C, H, W)
        delta0 = (x_sel + self.init).clamp(0.0, 1.0) - x_sel
        opt = self._optimize(model, opt_x, x_sel, pos, delta0, labels, criterion, norm, ctx)
        with torch.no_grad():
            chosen = torch.where(opt.found.view(-1, 1, 1, 1, 1), opt.best, opt.final)
            # not rounded: the template quantizes, with the rounding the loop judged by
            x_out = x.index_copy(1, pos, x_sel + chosen)
            if self.propagate and opt_x is not x:
                # fooled on the short video; the whole one may need the stronger last iterate
                x_last = x.index_copy(1, pos, x_sel + opt.final)
                both = _on_grid(torch.cat([x_out, x_last]))
                fooled = criterion.is_adversarial(model(both[: x.shape[0]]))
                use_last = ~fooled & criterion.is_adversarial(model(both[x.shape[0] :]))
                x_out = torch.where(use_last.view(-1, 1, 1, 1, 1), x_last, x_out)
            pruned: list[list[int]] = [[] for _ in range(x.shape[0])]
            if self.prune:
                pruned = _prune_frames(model, x, x_out, criterion)
                for b, row in enumerate(pruned):
                    x_out[b, row] = x[b, row]
        per_iteration = opt.seconds / max(opt.iterations, 1)
        if propagation:
            propagation["seconds"] = opt.seconds
            propagation["seconds_per_iteration"] = per_iteration
            ctx.info["propagation"] = propagation
        ctx.info.update(
            {
                "norm": norm,
                "iterations": opt.iterations,
                "lam_final": opt.lam.tolist() if len(opt.lam) > 1 else float(opt.lam[0]),
                "seconds_per_iteration": per_iteration,
                "frames_optimized": len(pos),
                "frames_pruned": [[ctx.frame_ids[t] for t in row] for row in pruned]
                if len(pruned) > 1
                else [ctx.frame_ids[t] for t in pruned[0]],
            }
        )
        self._report(model, x, _on_grid(x_out), ctx)
        return x_out

    def _optimize(
        self,
        model: nn.Module,
        x: Tensor,
        x_sel: Tensor,
        pos: Tensor,
        delta0: Tensor,
        labels: Tensor,
        criterion: Criterion,
        norm: Literal["l21", "l2"],
        ctx: AttackContext,
    ) -> _Optimization:
        """Proximal gradient over E at the sampled positions `pos` (see the class docstring)."""
        beta1, beta2, eps = 0.9, 0.999, 1e-8  # Adam's defaults
        # RMS units -> the frames' L2 norms; one weight per video, halved while it has not fooled
        lam = torch.full((x.shape[0],), self.lam / math.sqrt(x_sel[0, 0].numel()), device=x.device)
        start = time.perf_counter()
        delta = delta0.clone()
        m, v = torch.zeros_like(delta), torch.zeros_like(delta)
        n = x.shape[0]
        best_delta = delta.clone()
        best_pen = torch.full((n,), math.inf, device=x.device)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        stale = torch.zeros(n, dtype=torch.long, device=x.device)
        iterations = 0
        for i in range(self.max_iter):
            with torch.enable_grad():
                d_req = delta.requires_grad_(True)
                x_adv = straight_through_quantize(x.index_copy(1, pos, x_sel + d_req))
                log_probs = model(x_adv)
                fool = fooling_loss(log_probs, labels, criterion.targeted)
                # autograd.grad rather than backward(): the model's parameters never accumulate .grad
                (grad,) = torch.autograd.grad(fool.sum(), d_req)
            delta = delta.detach()
            with torch.no_grad():
                # judge the iterate the gradient was taken at, by what the file will hold
                adv = criterion.is_adversarial(log_probs)
                pen_q = sparse_penalty(x_adv.index_select(1, pos) - x_sel, norm)
                better = adv & (pen_q < best_pen)
                improved = adv & (pen_q < best_pen * (1 - 1e-3))
                best_delta[better] = delta[better]
                best_pen = torch.where(better, pen_q, best_pen)
                found |= adv
                stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
                ctx.record(
                    step=i,
                    penalty=float(pen_q.mean()),
                    fooling_loss=float(fool.mean()),
                    adversarial=float(adv.float().mean()),
                )
                if self.optimizer == "adam":
                    m.mul_(beta1).add_(grad, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    m_hat, v_hat = m / (1 - beta1 ** (i + 1)), v / (1 - beta2 ** (i + 1))
                    step = self.lr * m_hat / (v_hat.sqrt() + eps)
                    dims = 2 if norm == "l21" else 1  # one step size per frame, or per video
                    s = self.lr / (v_hat.flatten(dims).mean(dim=dims).sqrt() + eps)
                else:
                    step = self.lr * grad
                    s = torch.full(delta.shape[:2] if norm == "l21" else delta.shape[:1], self.lr)
                delta = (x_sel + delta - step).clamp(0.0, 1.0) - x_sel
                # a convex combination of 0 and a delta inside the box: the prox keeps X + E in [0, 1]
                tau = s * lam.view(-1, *([1] * (s.dim() - 1)))  # (N, K) per frame or (N,) per video
                delta = prox_l21(delta, tau) if norm == "l21" else prox_l2(delta, tau)
            iterations = i + 1
            if (i + 1) % self.patience == 0:
                lam = torch.where(found, lam, lam / 2)
            ctx.step(iterations, self.max_iter)
            if bool((found & (stale >= self.patience)).all()):
                break
        lam_final = lam * math.sqrt(x_sel[0, 0].numel())
        return _Optimization(best_delta, found, delta, iterations, time.perf_counter() - start, lam_final)

    def _report(
        self,
        model: nn.Module,
        x: Tensor,
        x_adv: Tensor,
        ctx: AttackContext,
    ) -> None:
        """Fill `ctx.info` from the quantized result (what the file will hold)."""
        with torch.no_grad():
            delta = x_adv - x
            changed = delta.flatten(2).ne(0).any(dim=2)  # (N, T)
            map_per_frame = delta.abs().flatten(2).mean(dim=2)  # (N, T)
            l2_frames = per_frame_l2(delta)
            per_video: list[dict[str, Any]] = []
            frame_preds: tuple[Tensor, Tensor] | None = None
            frame_log_probs = getattr(model, "frame_log_probs", None)
            if bool(getattr(model, "has_frame_predictions", False)) and callable(frame_log_probs):
                frame_preds = (frame_log_probs(x).argmax(-1), frame_log_probs(x_adv).argmax(-1))
            for b in range(x.shape[0]):
                row: dict[str, Any] = {
                    "frame_ids": list(ctx.frame_ids),
                    "frames_perturbed": [ctx.frame_ids[i] for i in changed[b].nonzero().flatten().tolist()],
                    "map_per_frame": map_per_frame[b].tolist(),
                    "map": float(map_per_frame[b].mean()),
                    "l21": float(l2_frames[b].sum()),
                    "l2": float(l2_frames[b].pow(2).sum().sqrt()),
                    "sparsity": float((~changed[b]).float().mean()),
                }
                if frame_preds is not None:
                    clean_p, adv_p = frame_preds[0][b], frame_preds[1][b]
                    untouched = ~changed[b]
                    flipped = untouched & (clean_p != adv_p)
                    row["frame_predictions_clean"] = clean_p.tolist()
                    row["frame_predictions_adv"] = adv_p.tolist()
                    row["clean_frames_flipped"] = [
                        ctx.frame_ids[i] for i in flipped.nonzero().flatten().tolist()
                    ]
                    row["propagation_rate"] = (
                        float(flipped.sum() / untouched.sum()) if bool(untouched.any()) else None
                    )
                per_video.append(row)
        ctx.info["units"] = "map, l21, l2 in [0, 1] pixel units"
        # One video (the pipeline's case): its fields directly; a batch: each field as a list per video.
        if len(per_video) == 1:
            ctx.info.update(per_video[0])
        else:
            for key in per_video[0]:
                ctx.info[key] = [row[key] for row in per_video]
