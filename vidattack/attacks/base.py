"""The attack template every attack fills in.

`Attack.__call__` is final: it validates the input, decides the criterion (untargeted or targeted),
builds the seeded generator and the query-counting model, asks the attack for its threat model, runs the
attack's own loop (`run`), then projects and quantizes the result to what an 8-bit file can hold inside
the threat model, and judges success on that quantized video. For a black-box attack (its model is a
`QueryModel`) the clean-label and judging queries go through the black box and are counted like the
attack's own, and the judging query is held back from the attack's budget, so `max_queries` is never
exceeded. An attack therefore writes only:

- `threat_model(model, x, criterion, ctx)`: its set of allowed videos (norm ball, ratio bound, region
  mask...), possibly chosen with the model (a region search); and
- `run(model, x, criterion, threat, ctx)`: its update loop, returning the adversarial video.

Attacks see `(N, T, C, H, W)` float videos in [0, 1] and a model mapping them to log-probabilities
`(N, K)` (a `vidattack.models.BoundModel`, or any module with that contract). They never see files.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, final

import torch
from torch import Tensor, nn

from vidattack import cancel
from vidattack.attacks.blackbox.query_model import QueryModel
from vidattack.attacks.context import AttackContext, StepFn
from vidattack.attacks.counting import CountingModel, queries_of, video_queries_of
from vidattack.attacks.params import ParamSpec, param_specs, plain_value, validate
from vidattack.attacks.result import AttackResult, measure_norms
from vidattack.criteria import Criterion, make_criterion, resolve_target
from vidattack.errors import BadParameterError
from vidattack.precision import (
    Precision,
    active_loss_scale,
    optimising,
    requested_precision,
    resolve_for_model,
)
from vidattack.threat import ThreatModel

# The options every attack understands, each meaning the attack's own budget, step and iterations.
COMMON_OPTIONS = ("eps", "alpha", "steps")


@dataclass(frozen=True)
class Unsupported:
    """An `Attack.common` entry for a common option the attack has no counterpart of: `instead` says
    what it has ("its budget is max_queries")."""

    instead: str


def loss_and_grad(
    model: nn.Module, x: Tensor, objective: Callable[[Tensor], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradient hook of white-box attacks: `(log_probs, objective (N,), d objective / d x)`.

    Gradients are taken with respect to `x` only (`autograd.grad`), so the model's parameters never
    accumulate `.grad` even when they require it. Under an attack's reduced precision (see
    `vidattack.precision`) the model runs under autocast while the objective is computed in float32
    from its log-probabilities; in fp16 the backward runs on a scaled objective (`LossScale`).
    """
    primed = model.take_primed(x) if isinstance(model, CountingModel) else None
    with torch.enable_grad():
        if primed is not None:
            x_req, log_probs = primed
        else:
            x_req = x.detach().requires_grad_(True)
            log_probs = model(x_req)
        value = objective(log_probs.float())
        scale = active_loss_scale()
        if scale is None:
            (grad,) = torch.autograd.grad(value.sum(), x_req)
        else:
            total = value.sum()
            # the graph is kept: an overflowed backward is recomputed on it at half the scale
            grad = scale.grad_of(lambda f: torch.autograd.grad(total * f, x_req, retain_graph=True)[0])
    return log_probs.detach().float(), value.detach(), grad


def _check_video(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise BadParameterError(f"expected a torch.Tensor video, got {type(x).__name__}")
    if x.dim() != 5 or x.shape[2] != 3:
        raise BadParameterError(f"expected a video tensor (N, T, 3, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise BadParameterError(f"expected a float video in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise BadParameterError("expected a non-empty video tensor")
    lo, hi = float(x.min()), float(x.max())
    if not (lo >= 0.0 and hi <= 1.0):
        raise BadParameterError(f"expected pixel values in [0, 1], got [{lo:g}, {hi:g}]")


def frame_plan_of(model: nn.Module, t: int) -> tuple[tuple[int, ...], int]:
    """`(frame_ids, num_frames)` of the T sampled frames, from the model's frame plan.

    A `BoundModel` (or a wrapper that delegates attribute access to one) has a `plan` with the video
    frame numbers it samples; any other module is taken to see a whole T-frame video.
    """
    plan = getattr(model, "plan", None)
    ids = getattr(plan, "frame_ids", None)
    if ids is None:
        return tuple(range(t)), t
    if len(ids) != t:
        raise BadParameterError(f"expected a video of the {len(ids)} frames the model samples, got {t}")
    return tuple(ids), int(plan.num_frames)  # type: ignore[union-attr]


def _check_starting_points(points: Tensor | None, x: Tensor) -> Tensor | None:
    # foolbox's `starting_points`: one start per video (or one for all), shaped like the videos
    if points is None:
        return None
    if not isinstance(points, Tensor) or not points.is_floating_point():
        kind = points.dtype if isinstance(points, Tensor) else type(points).__name__
        raise BadParameterError(f"expected starting_points as a float video tensor in [0, 1], got {kind}")
    if points.dim() != 5 or points.shape[0] not in (1, x.shape[0]) or points.shape[1:] != x.shape[1:]:
        rest = ", ".join(str(d) for d in x.shape[1:])
        want = f"(1, {rest})" if x.shape[0] == 1 else f"({x.shape[0]} or 1, {rest})"
        raise BadParameterError(f"expected starting_points of shape {want}, got {tuple(points.shape)}")
    if not (float(points.min()) >= 0.0 and float(points.max()) <= 1.0):
        lo, hi = float(points.min()), float(points.max())
        raise BadParameterError(f"expected starting_points with pixel values in [0, 1], got [{lo:g}, {hi:g}]")
    return points.detach().to(device=x.device, dtype=x.dtype).expand_as(x)


def _black_box_clean(qm: QueryModel, x: Tensor) -> Tensor:
    # For a black box the clean label is a query like any other: it is counted, and the budget must
    # leave room for it and for judging the result.
    if qm.max_queries is not None and qm.max_queries < 2:
        raise BadParameterError(
            "expected a query budget of at least 2 per video for a black-box attack (one query for the "
            f"clean label, one to judge the result), got {qm.max_queries}"
        )
    return qm.log_probs_each(x)


def _judging_held(wrapped: nn.Module) -> AbstractContextManager[None]:
    # the judging query of each video is held back from a black-box attack's budget until it is made
    return wrapped.holding(1) if isinstance(wrapped, QueryModel) else nullcontext()


def _judge(model: nn.Module, wrapped: nn.Module, x_adv: Tensor) -> Tensor:
    if isinstance(wrapped, QueryModel):
        return wrapped.log_probs_each(x_adv)  # counted, within the held budget
    with torch.no_grad():
        return model(x_adv)


@dataclass(kw_only=True)
class Attack(ABC):
    """Base class of every attack. Subclasses are keyword-only dataclasses of hyperparameters.

    Class attributes describe the attack for `vidattack attacks`: `paper` (citation and section),
    `threat_summary` (what it changes and how), `white_box` (False routes the model through a
    query-only interface), `common` (what the common options `--eps`, `--alpha`, `--steps` set when
    the attack's own parameter has another name, e.g. MultAV's `{"eps": "eps_m"}`, or
    `Unsupported("its budget is max_queries")` when it has no such thing).

    Two capabilities the template checks: `stops_when_fooled` (the attack runs the shared loop, which
    can stop each video once it is fooled: `stop_when_fooled=`), and `batchable` (several videos in one
    call give each video exactly what attacking it alone at the same seed gives: all its randomness
    is drawn per video through the context, and `per_video_info` names the dotted `info` keys that hold
    one entry per video, so `AttackResult.split` can hand each video its own).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    threat_summary: ClassVar[str] = ""
    white_box: ClassVar[bool] = True
    common: ClassVar[dict[str, str | Unsupported]] = {}
    stops_when_fooled: ClassVar[bool] = False
    batchable: ClassVar[bool] = False
    per_video_info: ClassVar[frozenset[str]] = frozenset({"stopped_at"})

    def __post_init__(self) -> None:
        for spec in self.params():
            setattr(self, spec.name, validate(spec, getattr(self, spec.name)))

    @classmethod
    def params(cls) -> list[ParamSpec]:
        """The attack's hyperparameters with types, defaults, ranges and help."""
        return param_specs(cls)

    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter value this instance uses (for the report); `auto` values resolved."""
        return {f.name: plain_value(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def common_parameter(cls, option: str) -> str:
        """The parameter a common option (`eps`, `alpha`, `steps`) sets on this attack.

        Raises BadParameterError naming what the attack has instead when it has no such parameter.
        """
        if option not in COMMON_OPTIONS:
            raise ValueError(f"expected one of {', '.join(COMMON_OPTIONS)}, got {option!r}")
        own = {s.name for s in cls.params()}
        target = cls.common.get(option, option)
        if isinstance(target, Unsupported):
            raise BadParameterError(f"{cls.name} has no {option}; {target.instead}")
        if target not in own:
            raise BadParameterError(
                f"{cls.name} has no {option}; its parameters are {', '.join(sorted(own))}"
            )
        return target

    @classmethod
    def describe(cls) -> dict[str, Any]:
        doc = (cls.__doc__ or "").strip()
        return {
            "name": cls.name,
            "summary": doc.splitlines()[0] if doc else "",
            "paper": cls.paper,
            "threat": cls.threat_summary,
            "white_box": cls.white_box,
            "params": [p.to_dict() for p in cls.params()],
        }

    # -- what an attack implements -------------------------------------------------------------

    @abstractmethod
    def threat_model(
        self, model: nn.Module, x: Tensor, criterion: Criterion, ctx: AttackContext
    ) -> ThreatModel:
        """The set of videos this attack may return for clean `x`."""

    @abstractmethod
    def run(
        self, model: nn.Module, x: Tensor, criterion: Criterion, threat: ThreatModel, ctx: AttackContext
    ) -> Tensor:
        """The attack's loop: return an adversarial video (it will be projected and quantized)."""

    def wrap_model(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        """The view of the model the attack gets; black-box attacks override this with a query-only one."""
        return CountingModel(model, ctx.num_videos)

    @classmethod
    def check_stop_when_fooled(cls, margin: float | None) -> None:
        """Refuse `stop_when_fooled` for an attack that cannot stop early, or a negative margin."""
        if margin is None:
            return
        if not cls.stops_when_fooled:
            able = sorted(sub.name for sub in _attack_classes() if sub.stops_when_fooled and sub.name)
            raise BadParameterError(
                f"{cls.name} cannot stop when fooled: only iterative attacks on the shared loop can "
                f"({', '.join(able)})"
            )
        if not (margin >= 0.0 and margin < float("inf")):
            raise BadParameterError(
                f"expected a stop-when-fooled margin >= 0 (log-probability), got {margin}"
            )

    # -- the template ----------------------------------------------------------------------------

    def _context(
        self,
        model: nn.Module,
        x: Tensor,
        seed: int | Sequence[int],
        progress: StepFn | None,
        max_queries: int | None,
        starting_points: Tensor | None,
        stop_when_fooled: float | None,
    ) -> AttackContext:
        # one generator per video, each seeded as if it were attacked alone (batching keeps results)
        n, t = x.shape[:2]
        seeds = _seeds(seed, n)
        if n > 1 and not self.batchable and len(set(seeds)) > 1:
            raise BadParameterError(f"expected one seed for {self.name} (not batchable), got {len(seeds)}")
        frame_ids, num_frames = frame_plan_of(model, t)
        generators = []
        for s in seeds if n > 1 else seeds[:1]:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(s)
            generators.append(gen)
        return AttackContext(
            generator=generators[0],
            frame_ids=frame_ids,
            num_frames=num_frames,
            progress=progress,
            max_queries=max_queries,
            num_videos=n,
            starting_points=_check_starting_points(starting_points, x),
            generators=generators,
            stop_when_fooled=stop_when_fooled,
        )

    def _clean_pass(
        self,
        model: nn.Module,
        wrapped: nn.Module,
        x: Tensor,
        target: int | Tensor | None,
        labels: Tensor | None,
        precision: Precision = "fp32",
    ) -> tuple[Tensor, Criterion]:
        # The clean log-probabilities and the criterion, always in float32. A black box answers this as
        # a counted query; a white-box attack's clean forward keeps its graph, primed for its first
        # gradient, when that gradient is float32 too (in bf16/fp16 the first step runs its own pass).
        x_req = x.detach().requires_grad_(True) if self.white_box and precision == "fp32" else None
        if isinstance(wrapped, QueryModel):
            clean_graph = _black_box_clean(wrapped, x)
        else:
            with torch.set_grad_enabled(x_req is not None):
                clean_graph = model(x_req if x_req is not None else x)
        clean_lp = clean_graph.detach()
        if clean_lp.dim() != 2 or clean_lp.shape[0] != x.shape[0]:
            raise BadParameterError(
                f"expected model output (N, K) log-probabilities, got {tuple(clean_lp.shape)}"
            )
        if target is not None:
            for value in torch.as_tensor(target).reshape(-1).tolist():
                resolve_target(clean_lp.shape[1], value)
        clean = clean_lp.argmax(dim=1)
        criterion = make_criterion(labels.to(clean.device) if labels is not None else clean, target)
        if x_req is not None and isinstance(wrapped, CountingModel):
            wrapped.prime(x, x_req, clean_graph)
        return clean_lp, criterion

    @final
    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        target: int | Tensor | None = None,
        labels: Tensor | None = None,
        seed: int | Sequence[int] = 0,
        progress: StepFn | None = None,
        max_queries: int | None = None,
        starting_points: Tensor | None = None,
        stop_when_fooled: float | None = None,
        precision: str | None = None,
    ) -> AttackResult:
        """Attack `x` `(N, T, 3, H, W)` in [0, 1] against `model` (video -> log-probabilities).

        `target` makes the attack targeted (one class index for all, or one per sample); `labels` are
        the true labels for untargeted attacks (default: the model's clean predictions). Which video
        frames the T sampled frames are comes from the model's frame plan (`model.plan`, see
        `frame_plan_of`). `max_queries` caps a black-box attack's queries per video, the clean-label
        and judging queries included. `starting_points` `(N or 1, T, 3, H, W)` are videos inside the
        target class to start from (targeted V-BAD needs them; `vidattack.starting_points` makes them
        from `target_video`).

        `seed` seeds every video's own generator (or give one seed per video): for a `batchable` attack
        each video of a batch gets exactly what attacking it alone with its seed gives (up to the
        model's own arithmetic, see `AttackResult.split`). `stop_when_fooled` (an iterative attack's
        option, off by default) stops each video once its 8-bit quantized iterate is fooled by this
        log-probability margin; `info["stopped_at"]` says after how many steps (None: all of them).

        `precision` (`auto|fp32|bf16|fp16`, see `vidattack.precision`) is the arithmetic of the attack's
        own forward and backward passes (autocast); the clean label, the judging of the quantized
        result and the stop-when-fooled checks stay float32. A black-box attack always runs fp32.
        None takes the innermost `vidattack.precision.attack_precision` block's (fp32 outside any);
        `result.precision` says what ran.
        """
        _check_video(x)
        self.check_stop_when_fooled(stop_when_fooled)
        requested = requested_precision() if precision is None else precision
        ran = resolve_for_model(requested, x.device, model) if self.white_box else "fp32"
        x = x.detach()
        ctx = self._context(model, x, seed, progress, max_queries, starting_points, stop_when_fooled)
        wrapped = self.wrap_model(model, ctx)
        clean_lp, criterion = self._clean_pass(model, wrapped, x, target, labels, ran)
        start = time.perf_counter()
        with _judging_held(wrapped), optimising(ran, x.device):
            threat = self.threat_model(wrapped, x, criterion, ctx)
            x_adv = self.run(wrapped, x, criterion, threat, ctx).detach()
        if isinstance(wrapped, CountingModel):
            wrapped.discard_primed()  # frees the clean graph if the attack never used it
        if ctx.restrict_to is not None:
            threat = threat.restricted(ctx.restrict_to)
        # each phase after the steps is seconds long on a long video: a signal stops between them
        cancel.check()
        x_adv = threat.quantize(x_adv, x)
        seconds = time.perf_counter() - start
        cancel.check()
        adv_lp = _judge(model, wrapped, x_adv)
        if isinstance(wrapped, QueryModel):
            ctx.info["queries_per_video"] = wrapped.queries_per_video
        success = criterion.is_adversarial(adv_lp)
        cancel.check()
        norms = measure_norms(x_adv, x)
        cancel.check()
        norms[f"threat_{threat.name}"] = threat.measure(x_adv, x).tolist()
        per_video_history = any(ctx.histories)
        n = x.shape[0]
        clean = clean_lp.argmax(dim=1)
        return AttackResult(
            adversarial=x_adv,
            success=success,
            clean_labels=clean,
            adversarial_labels=adv_lp.argmax(dim=1),
            target=criterion.labels if criterion.targeted else None,
            clean_log_probs=clean_lp,
            adversarial_log_probs=adv_lp,
            queries=queries_of(wrapped),
            norms=norms,
            threat=threat.describe(),
            params=self.hyperparameters(),
            info=ctx.info,
            history=ctx.histories[0] if per_video_history and n == 1 else ctx.history,
            seconds=seconds,
            video_queries=video_queries_of(wrapped, n),
            video_histories=ctx.histories if per_video_history else [],
            per_video_info=self.per_video_info,
            precision=ran,
        )


def _seeds(seed: int | Sequence[int], n: int) -> list[int]:
    if isinstance(seed, int | Tensor) or not isinstance(seed, Sequence):
        return [int(seed)] * n
    seeds = [int(s) for s in seed]
    if len(seeds) not in (1, n):
        raise BadParameterError(f"expected one seed or {n} (one per video), got {len(seeds)}")
    return seeds * n if len(seeds) == 1 else seeds


def _attack_classes() -> set[type[Attack]]:
    # Every registered attack is a named subclass: read from the classes themselves rather than the
    # registry, which imports this module (once any attack is looked up by name, all are defined).
    found: set[type[Attack]] = set()
    todo = list(Attack.__subclasses__())
    while todo:
        sub = todo.pop()
        if sub not in found:
            found.add(sub)
            todo.extend(sub.__subclasses__())
    return found
