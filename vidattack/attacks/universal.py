"""Universal sparse perturbations: one perturbation that fools a model on many videos (Wei et al. 2019).

`UniversalAttack` is an ordinary attack with two uses:

- given a learned `UniversalPerturbation` (`vidattack perturb --apply PERT`), it adds it to the clip;
- without one, it learns a perturbation shared by the N videos of its input (paper eq. 2-3, or eq. 4
  when targeted) and adds it: the N videos of one call are the training set (`learn`). `vidattack
  universal` calls `learn` with the sampled clips of a folder of videos of any size.

The learning minimizes with Adam

    lam * ||M * E||_{2,1} + (1/N) sum_i fooling_loss(model(X_i + M * E))

over one perturbation E, with the same regularizer (per-frame RMS), fooling loss and 8-bit
straight-through rounding as the single-video `sparse` attack (`vidattack.attacks.sparse`).

How a perturbation of shape `(T_p, H_p, W_p, 3)` is fitted to a clip of another shape:

- Time: sampled frame p of T' gets perturbation frame floor((p + 0.5) T_p / T') (nearest neighbour), so
  a frame outside the temporal mask stays exactly zero and no frame mixes two perturbation frames.
- Space: each frame is resized bilinearly to H x W (antialiased when shrinking). An RMS-regularized
  perturbation keeps its per-pixel size under resizing, so its effect carries over.
- Values: added in [0, 1] units, clipped to [0, 1], rounded to 8 bits (by the attack template).

Pure tensor code: the file format lives in `vidattack.perturbation_file`, never here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.context import AttackContext, StepFn
from vidattack.attacks.params import ParamSpec, param, param_specs
from vidattack.attacks.registry import register_attack
from vidattack.attacks.sparse import WEI, fooling_loss, sparse_penalty, straight_through_quantize
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.models.capabilities import Capability
from vidattack.models.view import Preprocess, plan_frames
from vidattack.threat import ThreatModel, Unbounded, frames_mask


@dataclass
class UniversalPerturbation:
    """One additive perturbation for many videos, `delta` `(T_p, H_p, W_p, 3)` float in [0, 1] units.

    `frames` are the perturbation frames the temporal mask allows (the others are exactly zero);
    `preprocess` is the sampling of the model it was learned against (where `apply` puts it in time);
    `model` the model's name; `params` the settings it was learned with; `created` an ISO timestamp;
    `source` where it was loaded from (reports name it; empty for one made in memory).
    """

    delta: Tensor
    frames: list[int]
    model: str = ""
    preprocess: Preprocess | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        d = self.delta
        if not isinstance(d, Tensor) or d.dim() != 4 or d.shape[-1] != 3 or 0 in d.shape:
            shape = tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__
            raise BadParameterError(f"expected a perturbation of shape (T, H, W, 3), got {shape}")
        bad = [f for f in self.frames if not 0 <= f < d.shape[0]]
        if bad:
            raise BadParameterError(f"expected perturbation frames in [0, {d.shape[0] - 1}], got {bad[:5]}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """`(T_p, H_p, W_p)`."""
        t, h, w, _ = self.delta.shape
        return int(t), int(h), int(w)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for reports (no tensors)."""
        t, h, w = self.shape
        return {
            "shape": [t, h, w],
            "frames": self.frames,
            "model": self.model,
            "params": self.params,
            "created": self.created,
            "stats": self.stats,
            "map": float(self.delta.abs().mean()),
            "linf": float(self.delta.abs().max()),
        }

    def sampled_ids(self, num_frames: int) -> tuple[int, ...]:
        """The video frame numbers the perturbation goes on, for a video of `num_frames` frames."""
        if self.preprocess is None:
            return tuple(range(num_frames))
        return plan_frames(num_frames, self.preprocess).frame_ids

    def fitted(self, num_sampled: int, height: int, width: int) -> Tensor:
        """The perturbation fitted to `num_sampled` frames of `height x width`: `(T', 3, H, W)` float."""
        return fit(self.delta.permute(0, 3, 1, 2), num_sampled, height, width)

    def apply(self, frames_uint8: Tensor) -> Tensor:
        """Add the perturbation to a video `(T, H, W, 3)` uint8 and return the adversarial video, uint8.

        Frames the learning model does not sample, and frames outside the temporal mask, are returned
        unchanged. Same arithmetic as `UniversalAttack` on the sampled clip.
        """
        if not isinstance(frames_uint8, Tensor) or frames_uint8.dtype != torch.uint8:
            got = frames_uint8.dtype if isinstance(frames_uint8, Tensor) else type(frames_uint8).__name__
            raise BadParameterError(f"expected uint8 frames (T, H, W, 3), got {got}")
        if frames_uint8.dim() != 4 or frames_uint8.shape[-1] != 3 or 0 in frames_uint8.shape:
            raise BadParameterError(
                f"expected frames of shape (T>0, H, W, 3), got {tuple(frames_uint8.shape)}"
            )
        t, h, w, _ = frames_uint8.shape
        ids = torch.tensor(self.sampled_ids(int(t)), dtype=torch.long, device=frames_uint8.device)
        delta = self.fitted(len(ids), int(h), int(w)).to(frames_uint8.device)  # (T', 3, H, W)
        x = frames_uint8.index_select(0, ids).permute(0, 3, 1, 2).float() / 255.0  # (T', 3, H, W)
        adv = torch.round((x + delta).clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        out = frames_uint8.clone()
        out[ids] = adv.permute(0, 2, 3, 1)
        return out


def fit(delta: Tensor, num_sampled: int, height: int, width: int) -> Tensor:
    """Resize `(T_p, 3, H_p, W_p)` to `(num_sampled, 3, height, width)`: nearest in time, bilinear in space.

    Differentiable in `delta` (used while learning)."""
    t_p, _, h_p, w_p = delta.shape
    if num_sampled != t_p:
        idx = ((torch.arange(num_sampled, device=delta.device) + 0.5) * t_p / num_sampled).floor().long()
        delta = delta.index_select(0, idx.clamp(max=t_p - 1))
    if (height, width) != (h_p, w_p):
        shrinking = height < h_p or width < w_p
        delta = F.interpolate(
            delta, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
        )
    return delta


@dataclass
class TrainingClip:
    """One training video as the model sees it: `x` `(1, T', 3, H, W)` in [0, 1], the model bound to
    its frame plan, and the class the loss pushes away from (untargeted) or toward (targeted)."""

    x: Tensor
    model: nn.Module
    label: int


@dataclass
class Learned:
    """What `UniversalAttack.learn` found: `delta` `(T_p, 3, H_p, W_p)` (zero outside `frames`)."""

    delta: Tensor
    frames: list[int]
    epochs_run: int
    final_loss: float | None


@register_attack("universal")
@dataclass(kw_only=True)
class UniversalAttack(Attack):
    """Universal sparse perturbation: one perturbation E shared by many videos (Wei et al. 2019, Sec. 3.3).

    With `perturbation` (a learned `UniversalPerturbation`, e.g. `vidattack perturb --apply PERT`) it
    adds E, fitted to the clip's frames and size, to each video of the input and asks the model nothing
    beyond the template's clean and final forward passes. Without one it first learns E on the N
    videos of the input (`learn`), so one call on a single video is a per-video sparse attack with
    Adam, and `vidattack universal` learns on a whole folder. The N videos of one call share one E:
    unlike the other attacks, a batch of several videos is one training set, not N separate attacks.

    Settings have the `sparse` attack's meaning and units; `epochs` are passes over the training
    videos with one Adam step per `batch_size` videos, stopping after `patience` epochs without a
    lower mean loss. `frames` is the temporal mask over the perturbation's own frames.
    """

    paper = f"{WEI}, Sec. 3.3 and Table 4 (universal perturbations)"
    threat_summary = "any change in [0, 1] on the masked frames, kept small by the l2,1 penalty"

    lam: float = param(0.1, "weight of the l2,1 (or l2) penalty, in per-frame RMS units", min=0)
    lr: float = param(1e-2, "Adam learning rate in [0, 1] pixel units", min=0)
    epochs: int = param(40, "passes over the training videos", min=1, max=100000)
    batch_size: int = param(8, "videos per Adam step", min=1)
    patience: int = param(10, "stop after this many epochs without a lower mean loss", min=1)
    frames: str = param("all", "temporal mask over the perturbation's frames: all, K, random:K or 0,3,7")
    norm: Literal["l21", "l2"] = param("l21", "penalty: l21 (sparse) or l2")
    init: float = param(1e-4, "initial value of every element of E", min=0, max=1)
    # The learned tensor itself: not a hyperparameter (never text, never listed), applied when given.
    perturbation: UniversalPerturbation | None = field(default=None, repr=False, compare=False)

    @classmethod
    def params(cls) -> list[ParamSpec]:
        return [s for s in param_specs(cls) if s.name != "perturbation"]

    @property
    def needs(self) -> Capability:
        """Learning a perturbation needs gradients; applying a learned one (`perturb --apply`) asks the
        model only for the clean and final scores, so a surrogate's perturbation applies to a
        scores-only model (an ONNX export, a deployed service) too."""
        return Capability.GRADIENTS if self.perturbation is None else Capability.SCORES

    def hyperparameters(self) -> dict[str, Any]:
        """The learning settings; for an applied perturbation, where it came from (its own settings are
        in the report's `info.params`)."""
        if self.perturbation is not None:
            return {"perturbation": self.perturbation.source or "(in memory)"}
        return {s.name: getattr(self, s.name) for s in self.params()}

    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        return Unbounded()

    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        pert = self.perturbation
        _, t, _, h, w = x.shape
        if pert is None:
            # a CPU generator, seeded from the template's: the mask and batch order match `learn` on CPU
            seed = int(torch.randint(2**62, (1,), generator=ctx.generator, device=ctx.generator.device))
            clips = [
                TrainingClip(x[i : i + 1], model, int(label))
                for i, label in enumerate(criterion.labels.reshape(-1).tolist())
            ]
            learned = self.learn(
                clips,
                shape=(t, h, w),
                targeted=criterion.targeted,
                generator=torch.Generator().manual_seed(seed),
                progress=ctx.progress,
            )
            ctx.info.update(
                frames=learned.frames, epochs_run=learned.epochs_run, final_loss=learned.final_loss
            )
            delta = fit(learned.delta, t, h, w)
        else:
            ctx.info.update(pert.describe())
            delta = pert.fitted(t, h, w)
        return (x + delta.to(x.device, x.dtype).unsqueeze(0)).clamp(0.0, 1.0)  # (N, T, 3, H, W)

    def learn(
        self,
        clips: Sequence[TrainingClip],
        *,
        shape: tuple[int, int, int],
        targeted: bool,
        generator: torch.Generator,
        progress: StepFn | None = None,
    ) -> Learned:
        """Learn E `(T_p, 3, H_p, W_p)` = `shape` on `clips` (any sizes; E is fitted to each).

        Each Adam step averages the fooling loss over a batch of clips (one forward and backward per
        clip, so sizes may differ) and adds the penalty once. `generator` (CPU) draws a `random:K`
        mask and the batch order. Training stops after `epochs`, or after `patience` epochs without a
        lower mean loss; the last perturbation is kept.
        """
        if not clips:
            raise BadParameterError("expected at least one training video, got none")
        t_p, h_p, w_p = shape
        if min(shape) < 1:
            raise BadParameterError(f"expected a positive perturbation shape, got {shape}")
        device = clips[0].x.device
        allowed = frames_mask(self.frames, list(range(t_p)), t_p, generator)  # (T_p,)
        mask = allowed.to(device).view(-1, 1, 1, 1).float()
        delta = torch.full((t_p, 3, h_p, w_p), self.init, device=device, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=self.lr)
        best_loss, stale, epochs_run = math.inf, 0, 0
        for epoch in range(self.epochs):
            order = torch.randperm(len(clips), generator=generator).tolist()
            epoch_loss = self._epoch([clips[i] for i in order], delta, mask, optimizer, targeted)
            epochs_run = epoch + 1
            if progress is not None:
                progress(epochs_run, self.epochs)
            if epoch_loss < best_loss - 1e-4:
                best_loss, stale = epoch_loss, 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        return Learned(
            delta=(delta.detach() * mask),
            frames=allowed.nonzero().flatten().tolist(),
            epochs_run=epochs_run,
            final_loss=best_loss if math.isfinite(best_loss) else None,
        )

    def _epoch(
        self,
        clips: list[TrainingClip],
        delta: Tensor,
        mask: Tensor,
        optimizer: torch.optim.Optimizer,
        targeted: bool,
    ) -> float:
        """One pass over `clips` in their order, one Adam step per batch; returns the mean loss."""
        epoch_loss = 0.0
        for start in range(0, len(clips), self.batch_size):
            batch = clips[start : start + self.batch_size]
            grad = torch.zeros_like(delta)
            with torch.enable_grad():
                for clip in batch:
                    _, t, _, h, w = clip.x.shape
                    x_adv = straight_through_quantize(
                        (clip.x + fit(delta * mask, t, h, w).unsqueeze(0)).clamp(0, 1)
                    )
                    wanted = torch.tensor([clip.label], device=delta.device)
                    fool = fooling_loss(clip.model(x_adv), wanted, targeted).sum() / len(batch)
                    (g,) = torch.autograd.grad(fool, delta)
                    grad += g
                    epoch_loss += float(fool.detach()) * len(batch) / len(clips)
                pen = sparse_penalty((delta * mask).unsqueeze(0), self.norm).sum()
                (g,) = torch.autograd.grad(self.lam * pen, delta)
                grad += g
            epoch_loss += self.lam * float(pen.detach()) * len(batch) / len(clips)
            delta.grad = grad
            optimizer.step()
            with torch.no_grad():
                # a perturbation beyond +-1 can never matter after clipping to [0, 1]
                delta.clamp_(-1.0, 1.0).mul_(mask)
        return epoch_loss
