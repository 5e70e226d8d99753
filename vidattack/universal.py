"""Universal sparse perturbations: one perturbation that fools a model on many videos (Wei et al. 2019).

`learn_universal` solves the paper's eq. 2-3 (eq. 4 with `target`): with Adam, minimize

    lam * ||M * E||_{2,1} + (1/N) sum_i fooling_loss(model(X_i + M * E))

over one perturbation E shared by a set of training videos, with the same regularizer (per-frame RMS),
fooling loss and 8-bit straight-through rounding as the single-video `sparse` attack
(`vidattack.attacks.sparse`). The result is a `UniversalPerturbation` that saves to and loads from a
safetensors file and `apply`s to any new video.

How a perturbation of shape `(T_p, H_p, W_p, 3)` is fitted to a video of another shape:

- Time: it goes on the frames the model samples from that video (the plan of the preprocessing it was
  learned with, stored in the file), which is where it was learned; the other frames stay untouched.
  When the model samples T' != T_p frames, sampled frame p gets perturbation frame
  floor((p + 0.5) T_p / T') (nearest neighbour), so a frame outside the temporal mask stays exactly
  zero and no frame mixes two perturbation frames.
- Space: each frame is resized bilinearly to the video's H x W (antialiased when shrinking). An
  RMS-regularized perturbation keeps its per-pixel size under resizing, so its effect carries over.
- Values: added in [0, 1] units, clipped to [0, 1], rounded to 8 bits.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vidattack.attacks.params import param, param_specs, parse_value, validate
from vidattack.attacks.sparse import fooling_loss, sparse_penalty, straight_through_quantize
from vidattack.errors import BadCheckpointError, BadParameterError, OutputExistsError
from vidattack.models.view import ModelView, Preprocess, plan_frames, sampled_frames
from vidattack.threat import frames_mask

FORMAT = "vidattack-universal-perturbation/1"
_TENSOR_KEY = "perturbation"

VideoSource = Tensor | str | os.PathLike[str]
ProgressFn = Callable[[int, int], None]


@dataclass(kw_only=True)
class UniversalSettings:
    """Hyperparameters of `learn_universal` (also parsed from `--set key=value` by `vidattack universal`).

    Same meaning and units as the `sparse` attack's; `epochs` passes over the training videos with one
    Adam step per `batch_size` videos.
    """

    lam: float = param(0.1, "weight of the l2,1 (or l2) penalty, in per-frame RMS units", min=0)
    lr: float = param(1e-2, "Adam learning rate in [0, 1] pixel units", min=0)
    epochs: int = param(40, "passes over the training videos", min=1, max=100000)
    batch_size: int = param(8, "videos per Adam step", min=1)
    patience: int = param(10, "stop after this many epochs without a lower mean loss", min=1)
    frames: str = param("all", "temporal mask over the perturbation's frames: all, K, random:K or 0,3,7")
    norm: Literal["l21", "l2"] = param("l21", "penalty: l21 (sparse) or l2")
    init: float = param(1e-4, "initial value of every element of E", min=0, max=1)

    def __post_init__(self) -> None:
        for spec in param_specs(type(self)):
            setattr(self, spec.name, validate(spec, getattr(self, spec.name)))

    @classmethod
    def from_text(cls, settings: dict[str, str]) -> UniversalSettings:
        """Settings from command-line text (`lam=0.05`); unknown keys fail with the known ones listed."""
        specs = {s.name: s for s in param_specs(cls)}
        unknown = sorted(set(settings) - set(specs))
        if unknown:
            raise BadParameterError(
                f"unknown setting {unknown[0]!r} for a universal perturbation; known: {', '.join(specs)}"
            )
        return cls(**{k: parse_value(specs[k], v) for k, v in settings.items()})

    def to_dict(self) -> dict[str, Any]:
        return {s.name: getattr(self, s.name) for s in param_specs(type(self))}


@dataclass
class UniversalPerturbation:
    """One additive perturbation for many videos, `delta` `(T_p, H_p, W_p, 3)` float in [0, 1] units.

    `frames` are the perturbation frames the temporal mask allows (the others are exactly zero);
    `preprocess` is the sampling of the model it was learned against (where `apply` puts it in time);
    `model` the model's name; `params` the settings it was learned with; `created` an ISO timestamp.
    """

    delta: Tensor
    frames: list[int]
    model: str = ""
    preprocess: Preprocess | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

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

    # -- applying ----------------------------------------------------------------------------------

    def sampled_ids(self, num_frames: int) -> tuple[int, ...]:
        """The video frame numbers the perturbation goes on, for a video of `num_frames` frames."""
        if self.preprocess is None:
            return tuple(range(num_frames))
        return plan_frames(num_frames, self.preprocess).frame_ids

    def fitted(self, num_sampled: int, height: int, width: int) -> Tensor:
        """The perturbation fitted to `num_sampled` frames of `height x width`: `(T', 3, H, W)` float."""
        return _fit(self.delta.permute(0, 3, 1, 2), num_sampled, height, width)

    def apply(self, frames_uint8: Tensor) -> Tensor:
        """Add the perturbation to a video `(T, H, W, 3)` uint8 and return the adversarial video, uint8.

        Frames the model does not sample, and frames outside the temporal mask, are returned unchanged.
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

    # -- files -------------------------------------------------------------------------------------

    def metadata(self) -> dict[str, str]:
        """The safetensors header metadata (strings only)."""
        t, h, w = self.shape
        return {
            "format": FORMAT,
            "shape": json.dumps([t, h, w, 3]),
            "frames": json.dumps(self.frames),
            "model": self.model,
            "preprocess": json.dumps(self.preprocess.to_dict() if self.preprocess else None),
            "params": json.dumps(self.params),
            "created": self.created,
            "stats": json.dumps(self.stats),
        }

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
        """Write a safetensors file (tensor `perturbation` plus `metadata()`), atomically."""
        from safetensors.torch import save_file

        p = Path(path)
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass overwrite to replace it")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
        try:
            save_file(
                {_TENSOR_KEY: self.delta.detach().float().cpu().contiguous()}, str(tmp), self.metadata()
            )
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UniversalPerturbation:
        """Read a file written by `save`; a missing, foreign or damaged file raises one clear line."""
        from safetensors import SafetensorError, safe_open

        p = Path(path)
        if not p.is_file():
            raise BadParameterError(f"expected a universal perturbation file, got no such file: {p}")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                keys = list(f.keys())
                if meta.get("format") != FORMAT or _TENSOR_KEY not in keys:
                    raise BadCheckpointError(
                        f"expected a vidattack universal perturbation ({FORMAT}) in {p}, "
                        f"got format {meta.get('format')!r} with tensors {keys[:3]}"
                    )
                delta = f.get_tensor(_TENSOR_KEY)
        except (SafetensorError, OSError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BadCheckpointError(
                f"expected a safetensors perturbation file in {p}, got: {first}"
            ) from None
        try:
            shape = json.loads(meta.get("shape", "null"))
            frames = json.loads(meta.get("frames", "null"))
            pre = json.loads(meta.get("preprocess", "null"))
            params = json.loads(meta.get("params", "{}"))
            stats = json.loads(meta.get("stats", "{}"))
            preprocess = Preprocess.from_dict(pre) if pre else None
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise BadCheckpointError(f"expected valid metadata in {p}, got: {e}") from None
        if list(delta.shape) != shape:
            raise BadCheckpointError(
                f"expected a perturbation of shape {shape} in {p}, got {list(delta.shape)}"
            )
        if not delta.is_floating_point() or not bool(torch.isfinite(delta).all()):
            raise BadCheckpointError(f"expected finite float perturbation values in {p}, got {delta.dtype}")
        if not isinstance(frames, list) or not all(isinstance(v, int) for v in frames):
            raise BadCheckpointError(f"expected a list of frame numbers in {p}, got {frames!r}")
        try:
            return cls(
                delta=delta.float(),
                frames=frames,
                model=meta.get("model", ""),
                preprocess=preprocess,
                params=params if isinstance(params, dict) else {},
                created=meta.get("created", ""),
                stats=stats if isinstance(stats, dict) else {},
            )
        except BadParameterError as e:
            raise BadCheckpointError(f"{p}: {e}") from None


def _fit(delta: Tensor, num_sampled: int, height: int, width: int) -> Tensor:
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


def _as_frames(video: VideoSource) -> Tensor:
    if isinstance(video, Tensor):
        if video.dtype != torch.uint8 or video.dim() != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            raise BadParameterError(
                f"expected a video as uint8 frames (T, H, W, 3), got {video.dtype} {tuple(video.shape)}"
            )
        return video
    from vidattack.video import load_video

    return load_video(video).frames


def _device_of(view: ModelView) -> torch.device:
    return next(iter(view.net.parameters()), torch.empty(0)).device


@dataclass
class _Item:
    x: Tensor  # (1, T', 3, H, W) float in [0, 1], on the model's device
    model: torch.nn.Module  # the view bound to this video's plan
    label: int


def _prepare(videos: Sequence[VideoSource], view: ModelView, labels: Sequence[int] | None) -> list[_Item]:
    if labels is not None and len(labels) != len(videos):
        raise BadParameterError(f"expected one label per video ({len(videos)}), got {len(labels)}")
    device = _device_of(view)
    items = []
    for i, video in enumerate(videos):
        frames = _as_frames(video)
        plan = view.plan(int(frames.shape[0]))
        bound = view.bind(plan)
        x = sampled_frames(frames, plan, device)
        if labels is not None:
            label = int(labels[i])
        else:
            with torch.no_grad():
                label = int(bound(x).argmax(dim=1))
        items.append(_Item(x=x, model=bound, label=label))
    return items


def learn_universal(
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    settings: UniversalSettings | None = None,
    labels: Sequence[int] | None = None,
    target: int | None = None,
    shape: tuple[int, int, int] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    **params: Any,
) -> UniversalPerturbation:
    """Learn one perturbation that fools `model_view` on `videos` (paper eq. 2-3, or eq. 4 with `target`).

    Args:
        videos: uint8 frames `(T, H, W, 3)` or paths of video files; sizes and lengths may differ.
        model_view: the classifier (`vidattack.models.load_model`), on the device to use.
        settings: hyperparameters (`UniversalSettings`); keyword `params` (lam=, lr=, epochs=, frames=,
            norm=, batch_size=, patience=, init=) override single fields.
        labels: the true class of each video for the untargeted loss (default: the clean predictions).
        target: a class index to reach instead (targeted).
        shape: the perturbation's `(T_p, H_p, W_p)` (default: the first video's sampled frames and size).
        seed: seeds the batch order and a `random:K` frame mask.
        progress: called with (epochs done, epochs).

    Each Adam step averages the fooling loss over a batch of videos (one forward and backward per
    video, so videos of different sizes mix) and adds the penalty once. Training stops after `epochs`
    or when the epoch's mean loss has not improved for `patience` epochs; the last perturbation is kept.
    """
    if not videos:
        raise BadParameterError("expected at least one training video, got none")
    base = settings or UniversalSettings()
    cfg = UniversalSettings(**{**base.to_dict(), **params}) if params else base
    if target is not None and not 0 <= int(target) < model_view.num_classes:
        raise BadParameterError(f"expected a target class in [0, {model_view.num_classes - 1}], got {target}")
    items = _prepare(videos, model_view, labels)
    device = _device_of(model_view)
    _, t0, _, h0, w0 = items[0].x.shape
    t_p, h_p, w_p = shape if shape is not None else (int(t0), int(h0), int(w0))
    if min(t_p, h_p, w_p) < 1:
        raise BadParameterError(f"expected a positive perturbation shape, got {(t_p, h_p, w_p)}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    allowed = frames_mask(cfg.frames, list(range(t_p)), t_p, generator)  # (T_p,)
    mask = allowed.to(device).view(-1, 1, 1, 1).float()

    delta = torch.full((t_p, 3, h_p, w_p), cfg.init, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=cfg.lr)
    best_loss, stale, epochs_run = math.inf, 0, 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(items), generator=generator).tolist()
        epoch_loss = 0.0
        for start in range(0, len(order), cfg.batch_size):
            batch = [items[i] for i in order[start : start + cfg.batch_size]]
            grad = torch.zeros_like(delta)
            with torch.enable_grad():
                for item in batch:
                    masked = delta * mask
                    _, t, _, h, w = item.x.shape
                    x_adv = straight_through_quantize(
                        (item.x + _fit(masked, t, h, w).unsqueeze(0)).clamp(0, 1)
                    )
                    wanted = torch.tensor([target if target is not None else item.label], device=device)
                    fool = fooling_loss(item.model(x_adv), wanted, target is not None).sum() / len(batch)
                    (g,) = torch.autograd.grad(fool, delta)
                    grad += g
                    epoch_loss += float(fool.detach()) * len(batch) / len(items)
                pen = sparse_penalty((delta * mask).unsqueeze(0), cfg.norm).sum()
                (g,) = torch.autograd.grad(cfg.lam * pen, delta)
                grad += g
            epoch_loss += cfg.lam * float(pen.detach()) * len(batch) / len(items)
            delta.grad = grad
            optimizer.step()
            with torch.no_grad():
                # a perturbation beyond +-1 can never matter after clipping to [0, 1]
                delta.clamp_(-1.0, 1.0).mul_(mask)
        epochs_run = epoch + 1
        if progress is not None:
            progress(epochs_run, cfg.epochs)
        if epoch_loss < best_loss - 1e-4:
            best_loss, stale = epoch_loss, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break

    return UniversalPerturbation(
        delta=(delta.detach() * mask).permute(0, 2, 3, 1).cpu().contiguous(),
        frames=allowed.nonzero().flatten().tolist(),
        model=model_view.name,
        preprocess=model_view.preprocess,
        params={
            **cfg.to_dict(),
            "seed": seed,
            "target": target,
            "videos": len(items),
            "epochs_run": epochs_run,
        },
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        stats={"final_loss": best_loss if math.isfinite(best_loss) else None},
    )


@dataclass
class FoolingEvaluation:
    """Fooling rate of a universal perturbation on a set of videos.

    `rate` = fooled / counted, where counted are the videos the model classifies correctly when clean
    (all of them when no labels are given: the clean prediction is the label), and fooled those whose
    adversarial prediction differs from the label (untargeted) or equals `target` (targeted).
    """

    rate: float
    fooled: int
    counted: int
    total: int
    clean_predictions: list[int]
    adversarial_predictions: list[int]
    map: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fooling_rate": self.rate,
            "fooled": self.fooled,
            "counted": self.counted,
            "total": self.total,
            "clean_predictions": self.clean_predictions,
            "adversarial_predictions": self.adversarial_predictions,
            "map": self.map,
        }


def evaluate_universal(
    perturbation: UniversalPerturbation,
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    labels: Sequence[int] | None = None,
    target: int | None = None,
) -> FoolingEvaluation:
    """Apply `perturbation` to each video exactly as `vidattack perturb --apply` does (8-bit), classify it."""
    if labels is not None and len(labels) != len(videos):
        raise BadParameterError(f"expected one label per video ({len(videos)}), got {len(labels)}")
    device = _device_of(model_view)
    clean_preds, adv_preds, maps = [], [], []
    fooled = counted = 0
    for i, video in enumerate(videos):
        frames = _as_frames(video)
        adv = perturbation.apply(frames)
        plan = model_view.plan(int(frames.shape[0]))
        bound = model_view.bind(plan)
        with torch.no_grad():
            clean = int(bound(sampled_frames(frames, plan, device)).argmax(dim=1))
            pred = int(bound(sampled_frames(adv, plan, device)).argmax(dim=1))
        label = int(labels[i]) if labels is not None else clean
        clean_preds.append(clean)
        adv_preds.append(pred)
        maps.append(float((adv.float() - frames.float()).abs().mean() / 255.0))
        if clean != label:
            continue
        counted += 1
        fooled += int(pred == target) if target is not None else int(pred != label)
    return FoolingEvaluation(
        rate=fooled / counted if counted else 0.0,
        fooled=fooled,
        counted=counted,
        total=len(videos),
        clean_predictions=clean_preds,
        adversarial_predictions=adv_preds,
        map=sum(maps) / len(maps) if maps else 0.0,
    )


def fooling_rate(
    perturbation: UniversalPerturbation,
    videos: Sequence[VideoSource],
    model_view: ModelView,
    *,
    labels: Sequence[int] | None = None,
    target: int | None = None,
) -> float:
    """Share of the correctly classified `videos` that `perturbation` fools (see `FoolingEvaluation`)."""
    return evaluate_universal(perturbation, videos, model_view, labels=labels, target=target).rate
