"""The configurations of an eval: attacks x budgets x target modes, each with a stable key.

A `Config` is everything that decides an attack's output on a video except the video: the attack's
name and fully resolved hyperparameters, the model's identity, the seed and the target mode, and
what the records judge after it (the `--delivery` encode), and the delivery encode the attack is
optimised through (`--robust-to`). Its `key` is a hash of exactly those, so a rerun of the same
command finds its records again (resume), and a changed parameter makes a new key (new rows, never
mixed with the old ones).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vidattack.errors import BadParameterError, UsageError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.delivery.spec import DeliverySpec
    from vidattack.models.view import ModelView

UNTARGETED = "untargeted"
TARGET_MODES = ("random", "least-likely")


def attack_from_text(
    name: str,
    settings: Mapping[str, str],
    *,
    eps: str | None = None,
    alpha: str | None = None,
    steps: str | None = None,
) -> Attack:
    """An attack from command-line text, `eps`/`alpha`/`steps` meaning the attack's own budget,
    step size and iteration count (the registry's mapping: `eps_m` for MultAV); an additive `eps` or
    `alpha` below 1 given to a ratio-bounded parameter becomes the ratio 1 + value (`ratio_text`)."""
    from vidattack.attacks.registry import attack_class, get_attack_from_text

    cls = attack_class(name)
    return get_attack_from_text(
        name,
        dict(settings),
        eps=ratio_text(cls, "eps", eps),
        alpha=ratio_text(cls, "alpha", alpha),
        steps=steps,
    )


def own_parameter(cls: type[Attack], option: str) -> str | None:
    """The attack's own parameter a common option (`eps`, `alpha`, `steps`) sets; None if it has none."""
    try:
        return cls.common_parameter(option)
    except BadParameterError:
        return None


def ratio_text(cls: type[Attack], option: str, text: str | None) -> str | None:
    """`text` as the attack's own `option` parameter takes it: unchanged, except that an additive
    value e < 1 given to a ratio-bounded parameter (one whose minimum is 1: MultAV-Linf's `eps_m`
    and `alpha_m`, and its region variants') becomes the ratio bound 1 + e.

    Why 1 + e: a pixel in [0, 1] kept within max(x'/x, x/x') <= 1 + e moves by at most e / (1 + e)
    < e, so the multiplicative attack stays inside the additive Linf ball of the same e, short of its
    edge by e^2 / (1 + e) (under 0.25/255 for e up to 8/255). A grid `--eps 1/255,2/255,4/255` then
    compares PGD and MultAV at (nearly) the same pixel budget. Values >= 1 are ratio bounds as given
    (`--eps multav-linf=1.04`). MultAV-L2's `eps_m` (a norm of the log-ratio, any value >= 0) is
    taken as given.
    """
    if text is None:
        return None
    own = own_parameter(cls, option)
    spec = next((s for s in cls.params() if s.name == own), None)
    if spec is None or spec.min != 1:
        return text
    from vidattack.attacks.params import parse_number

    try:
        value = parse_number(text)
    except ValueError:
        return text  # the attack's own parser says what is wrong with it
    return repr(1.0 + value) if 0 <= value < 1 else text


def _jsonable(value: Any) -> Any:
    """Hyperparameter values as JSON with a canonical form (tuples as lists, floats exact)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


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
    the lossless output.
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

    @property
    def key(self) -> str:
        """16 hex digits of a hash of attack, resolved params, model identity, seed, target mode,
        early-stop margin, delivery encode and robust-to encode (the last three hashed only when set,
        so the keys of runs without them stay as they were). Both encodes are hashed in their
        resolved form (`DeliverySpec.describe()`), so `h264` and `h264:crf=23,preset=medium` share a
        key; the robust-to one with its EOT draws and low-pass too (`robust_key`)."""
        fields: dict[str, Any] = {
            "attack": self.attack,
            "params": self.params,
            "model": self.model,
            "seed": self.seed,
            "target": self.target,
        }
        if self.stop_when_fooled is not None:
            fields["stop_when_fooled"] = self.stop_when_fooled
        if self.delivery is not None:
            fields["delivery"] = self.delivery.describe()
        if self.robust_to is not None:
            fields["robust_to"] = robust_key(self.robust_to)
        blob = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

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
        return " ".join(parts)

    def make_attack(self) -> Attack:
        """A fresh attack instance for this configuration (cheap; made in each worker)."""
        return attack_from_text(
            self.attack, self.settings, eps=self.budget, alpha=self.alpha, steps=self.steps
        )

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
        )
        if "key" in d and d["key"] != cfg.key:
            raise UsageError(
                f"configuration {d['key']} does not hash to its key (got {cfg.key}); was it edited?"
            )
        return cfg


def robust_key(spec: DeliverySpec) -> dict[str, Any]:
    """What a `--robust-to` spec makes the attack see, for the key: the resolved encode, and the EOT
    draws per forward pass and backward low-pass that `describe()` leaves out, with
    `robust_model`'s defaults filled in (so `eot=1` and no `eot` share a key)."""
    from vidattack.delivery.simulate import DEFAULT_SIGMA

    eot = 1 if spec.eot is None else spec.eot
    sigma = DEFAULT_SIGMA if spec.sigma is None else spec.sigma
    return {**spec.describe(), "eot": eot, "sigma": float(sigma)}


def model_identity(view: ModelView) -> str:
    """What the key records of the model: its weights' sha256 when known, else its name."""
    return f"sha256:{view.sha256}" if view.sha256 else f"name:{view.name}"


def check_target(target: str, view: ModelView) -> str:
    """A `--target` value in canonical form: `untargeted`, `random`, `least-likely` or a label name."""
    t = target.strip()
    if t.lower() in ("", "none", UNTARGETED):
        return UNTARGETED
    if t.lower() in TARGET_MODES:
        return t.lower()
    from vidattack.criteria import resolve_target

    try:
        return view.labels[resolve_target(view, t)]
    except BadParameterError as e:
        raise BadParameterError(f"--target: {e} (or random, least-likely)") from None


def build_grid(
    attacks: Sequence[str],
    view: ModelView,
    *,
    eps: Sequence[str] | Mapping[str, Sequence[str]] = (),
    alpha: str | None = None,
    steps: str | None = None,
    settings: Mapping[str, str] | None = None,
    targets: Sequence[str] = (UNTARGETED,),
    seed: int = 0,
    stop_when_fooled: float | None = None,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> list[Config]:
    """Every configuration of `attacks` x `eps` x `targets`, in that order, validated now.

    `eps` are budget texts (`"1/255"`), each meaning the attack's own budget parameter (`eps_m`, a
    ratio, for MultAV); empty means the attacks' defaults. Attacks whose budgets live on different
    scales get their own lists from a mapping, `{"pgd-linf": ["1/255"], "multav-linf": ["1.02"]}`
    (an attack missing from it keeps its default budget). `settings` (`--set k=v`) apply to every attack that takes `k`; a key no
    listed attack takes is an error, as is any value an attack refuses. `stop_when_fooled` (a
    log-probability margin) stops the attacks that can stop early once a video is fooled; the others
    run every step, and none of them being able to is an error rather than a silent no-op.
    `delivery` (a `parse_delivery` spec) judges every attacked video again after that lossy encode
    of its written lossless file (`run_eval` needs `verify` for it); it is part of every key.
    `robust_to` (a `parse_robust_to` spec) makes every attack, white- or black-box, optimise through
    that encode (`vidattack.pipeline.delivery.robust_model`); it too is part of every key.
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
    target_modes = [check_target(t, view) for t in targets] or [UNTARGETED]
    configs: list[Config] = []
    seen: set[str] = set()
    for name in attacks:
        own = {s.name for s in classes[name].params()}
        mine = {k: v for k, v in settings.items() if k in own}
        stop = stop_when_fooled if classes[name].stops_when_fooled else None
        texts = eps.get(name, ()) if isinstance(eps, Mapping) else eps
        budgets: list[str | None] = list(texts) or [None]
        for budget in budgets:
            try:
                instance = attack_from_text(name, mine, eps=budget, alpha=alpha, steps=steps)
            except BadParameterError as e:
                where = f"--eps {budget} for {name}" if budget is not None else name
                raise BadParameterError(f"{where}: {e}") from None
            params = _jsonable(instance.hyperparameters())
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
                    steps=steps,
                    stop_when_fooled=stop,
                    delivery=delivery,
                    robust_to=robust_to,
                )
                if cfg.key not in seen:  # `--eps 1/255,0.00392156862745098` is one configuration
                    seen.add(cfg.key)
                    configs.append(cfg)
    return configs
