"""The configurations of an eval: attacks x budgets x target modes, each with a stable key.

A `Config` is everything that decides an attack's output on a video except the video: the attack's
name and fully resolved hyperparameters, the model's identity, the seed and the target mode, and
what the records judge after it (the `--delivery` encode), and the delivery encode the attack is
optimised through (`--robust-to`). Its `key` is a hash of exactly those, so a rerun of the same
command finds its records again (resume), and a changed parameter makes a new key (new rows, never
mixed with the old ones).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from vidattack.budget import Budget, attack_with_budget, parse_budget
from vidattack.errors import BadParameterError, UsageError
from vidattack.pipeline.spec import UNTARGETED, JobSpec, check_target, jsonable, model_identity, result_key
from vidattack.precision import resolve_for_model

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.delivery.spec import DeliverySpec
    from vidattack.models.view import ModelView


def budget_value(text: str | None) -> float | None:
    """The number a budget text stands for (`"4/255"` -> 0.0157), for sorting and plotting."""
    if text is None:
        return None
    from vidattack.attacks.params import parse_number

    try:
        return float(parse_number(text))
    except (ValueError, BadParameterError):
        return None


@dataclass(frozen=True)
class Config:
    """One cell of the grid: an attack with resolved hyperparameters, a target mode and a seed.

    `budget` is the `--eps` text that made this cell (None: the attack's default budget); `settings`
    the `--set` text it was given. `params` are the hyperparameters the attack instance reports, which
    is what the key hashes: two spellings of the same value (`4/255`, `0.0156862745`) share a key.
    `delivery`: the lossy delivery encode each attacked video is judged after (`--delivery`, issue
    #17); it does not change the attack, but the records hold its results, so it is in the key.
    `robust_to`: the delivery encode the attack optimises through (`--robust-to`, a
    `parse_robust_to` spec): the attack sees the model behind that codec, the records still judge
    the lossless output. `precision`: what the attack's steps ran in (`vidattack.precision`, resolved
    for the model and device: `fp32`, `bf16` or `fp16`); in the key unless fp32, as in perturb's.
    """

    attack: str
    params: dict[str, Any]
    target: str
    seed: int
    model: str
    budget: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    alpha: str | None = None
    steps: str | None = None
    stop_when_fooled: float | None = None
    delivery: DeliverySpec | None = None
    robust_to: DeliverySpec | None = None
    precision: str = "fp32"

    @property
    def key(self) -> str:
        """The key of this cell's job (`JobSpec.key`): 16 hex digits digesting attack, resolved
        params, model identity, seed, target mode, and when set the early-stop margin, the delivery
        encode, the robust-to encode and a precision other than fp32."""
        return result_key(self.attack, self.params, self.model, self)

    @functools.cached_property
    def spec(self) -> JobSpec:
        """This cell as the job every video of it runs (an eval writes no report, heatmaps or plots:
        its records hold the numbers; the lossless file is kept or not by `WorkOptions.outputs`)."""
        return JobSpec(
            attack=self.make_attack(),
            target=self.target,
            seed=self.seed,
            stop_when_fooled=self.stop_when_fooled,
            delivery=self.delivery,
            robust_to=self.robust_to,
            precision=self.precision,
            kinds=frozenset({"adv"}),
            overwrite=True,  # a rerun redoes only pairs without a record, whose file is a leftover
        )

    @property
    def budget_value(self) -> float | None:
        return budget_value(self.budget)

    @property
    def label(self) -> str:
        """A short human name: `pgd-linf eps=1/255 target=random robust_to=h264:crf=18-28
        delivery=h264:crf=23`."""
        parts = [self.attack]
        if self.budget is not None:
            parts.append(f"eps={self.budget}")
        parts += [f"{k}={v}" for k, v in sorted(self.settings.items())]
        if self.target != UNTARGETED:
            parts.append(f"target={self.target}")
        if self.stop_when_fooled is not None:
            parts.append(f"stop-when-fooled={self.stop_when_fooled:g}")
        if self.robust_to is not None:
            parts.append(f"robust_to={self.robust_to}")
        if self.delivery is not None:
            parts.append(f"delivery={self.delivery}")
        if self.precision != "fp32":
            parts.append(f"precision={self.precision}")
        return " ".join(parts)

    def make_attack(self) -> Attack:
        """A fresh attack instance for this configuration (cheap; made in each worker)."""
        return attack_with_budget(self.attack, self.settings, self.budget_texts())

    def budget_texts(self) -> Budget:
        """`--eps`, `--alpha`, `--steps` of this cell, parsed (`vidattack.budget`)."""
        return parse_budget(self.budget, self.alpha, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "attack": self.attack,
            "budget": self.budget,
            "budget_value": self.budget_value,
            "alpha": self.alpha,
            "steps": self.steps,
            "settings": dict(self.settings),
            "params": self.params,
            "target": self.target,
            "seed": self.seed,
            "model": self.model,
            "stop_when_fooled": self.stop_when_fooled,
            "delivery": str(self.delivery) if self.delivery is not None else None,
            "robust_to": str(self.robust_to) if self.robust_to is not None else None,
            "precision": self.precision,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        from vidattack.delivery.spec import parse_delivery, parse_robust_to

        cfg = cls(
            attack=str(d["attack"]),
            params=dict(d["params"]),
            target=str(d["target"]),
            seed=int(d["seed"]),
            model=str(d["model"]),
            budget=d.get("budget"),
            settings={str(k): str(v) for k, v in dict(d.get("settings") or {}).items()},
            alpha=d.get("alpha"),
            steps=d.get("steps"),
            stop_when_fooled=d.get("stop_when_fooled"),
            delivery=parse_delivery(d["delivery"]) if d.get("delivery") else None,
            robust_to=parse_robust_to(d["robust_to"]) if d.get("robust_to") else None,
            precision=str(d.get("precision") or "fp32"),
        )
        if "key" in d and d["key"] != cfg.key:
            raise UsageError(
                f"configuration {d['key']} does not hash to its key (got {cfg.key}); was it edited?"
            )
        return cfg


def _device_of(view: ModelView) -> torch.device:
    """Where `view`'s network lives (the CPU for one with no parameters, e.g. a scores-only model)."""
    return next((p.device for p in view.net.parameters()), torch.device("cpu"))


def build_grid(
    attacks: Sequence[str],
    view: ModelView,
    *,
    eps: Sequence[str] | Mapping[str, Sequence[str]] = (),
    alpha: str | None = None,
    steps: str | Mapping[str, str | None] | None = None,
    settings: Mapping[str, str] | None = None,
    targets: Sequence[str] = (UNTARGETED,),
    seed: int = 0,
    stop_when_fooled: float | None = None,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
    precision: str = "fp32",
) -> list[Config]:
    """Every configuration of `attacks` x `eps` x `targets`, in that order, validated now.

    `eps` are budget texts (`"1/255"`), each meaning the attack's own budget parameter (`eps_m`, a
    ratio, for MultAV); empty means the attacks' defaults. Attacks whose budgets live on different
    scales get their own lists from a mapping, `{"pgd-linf": ["1/255"], "multav-linf": ["1.02"]}`
    (an attack missing from it keeps its default budget). `steps` is one text for every attack, or a
    mapping from attack to its own (`vidattack eval --robust-to` raises only the iterative attacks'
    default). `settings` (`--set k=v`) apply to every attack that takes `k`; a key no
    listed attack takes is an error, as is any value an attack refuses. `stop_when_fooled` (a
    log-probability margin) stops the attacks that can stop early once a video is fooled; the others
    run every step, and none of them being able to is an error rather than a silent no-op.
    `delivery` (a `parse_delivery` spec) judges every attacked video again after that lossy encode
    of its written lossless file (`run_eval` needs `verify` for it); it is part of every key.
    `robust_to` (a `parse_robust_to` spec) makes every attack, white- or black-box, optimise through
    that encode (`vidattack.pipeline.delivery.robust_model`); it too is part of every key.
    `precision` (`auto|fp32|bf16|fp16`) is resolved here for `view` and its device, once, so the keys
    name what the steps ran in (`auto` would hash differently from the bf16 it becomes).
    """
    from vidattack.attacks.registry import attack_class
    from vidattack.delivery.spec import DeliverySpec

    if delivery is not None and not isinstance(delivery, DeliverySpec):
        raise UsageError(f"expected delivery as a DeliverySpec (parse_delivery), got {delivery!r}")
    if delivery is not None and len(delivery.crfs) != 1:  # a --robust-to range is no one encode
        raise BadParameterError(f"expected a delivery with one CRF, got {delivery}")
    if robust_to is not None and not isinstance(robust_to, DeliverySpec):
        raise UsageError(f"expected robust_to as a DeliverySpec (parse_robust_to), got {robust_to!r}")
    if isinstance(eps, Mapping):
        for name in eps:
            if name not in attacks:
                raise UsageError(f"--eps for {name}, which is not among the attacks {', '.join(attacks)}")
    if not attacks:
        raise UsageError("expected at least one attack")
    ran = resolve_for_model(precision, _device_of(view), view.net)
    settings = dict(settings or {})
    classes = {name: attack_class(name) for name in attacks}
    for k in settings:
        if not any(k in {s.name for s in cls.params()} for cls in classes.values()):
            raise BadParameterError(f"--set {k}: none of the attacks {', '.join(attacks)} takes {k!r}")
    if stop_when_fooled is not None:
        able = [n for n, cls in classes.items() if cls.stops_when_fooled]
        if not able:
            raise UsageError(
                f"--stop-when-fooled: none of the attacks {', '.join(attacks)} can stop early (only "
                "iterative attacks on the shared loop can); leave the option out"
            )
        classes[able[0]].check_stop_when_fooled(stop_when_fooled)  # the margin itself
    target_modes = [check_target(t, view, modes=True) for t in targets] or [UNTARGETED]
    configs: list[Config] = []
    seen: set[str] = set()
    for name in attacks:
        own = {s.name for s in classes[name].params()}
        mine = {k: v for k, v in settings.items() if k in own}
        stop = stop_when_fooled if classes[name].stops_when_fooled else None
        texts = eps.get(name, ()) if isinstance(eps, Mapping) else eps
        my_steps = steps.get(name) if isinstance(steps, Mapping) else steps
        budgets: list[str | None] = list(texts) or [None]
        for budget in budgets:
            try:
                instance = attack_with_budget(name, mine, parse_budget(budget, alpha, my_steps))
            except BadParameterError as e:
                where = f"--eps {budget} for {name}" if budget is not None else name
                raise BadParameterError(f"{where}: {e}") from None
            params = jsonable(instance.hyperparameters())
            for target in target_modes:
                cfg = Config(
                    attack=name,
                    params=params,
                    target=target,
                    seed=seed,
                    model=model_identity(view),
                    budget=budget,
                    settings=mine,
                    alpha=alpha,
                    steps=my_steps,
                    stop_when_fooled=stop,
                    delivery=delivery,
                    robust_to=robust_to,
                    precision=ran,
                )
                if cfg.key not in seen:  # `--eps 1/255,0.00392156862745098` is one configuration
                    seen.add(cfg.key)
                    configs.append(cfg)
    return configs
