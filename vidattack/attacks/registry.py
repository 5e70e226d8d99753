"""The attack registry: one name per attack class, discovered from the modules of this package."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from vidattack.errors import BadParameterError, UnknownAttackError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack

_REGISTRY: dict[str, type[Attack]] = {}
_loaded = False

A = TypeVar("A", bound="type[Attack]")


def register_attack(name: str) -> Callable[[A], A]:
    """Class decorator: make an attack available as `name` (CLI `--attack name`, `get_attack(name)`)."""

    def deco(cls: A) -> A:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"attack name {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_all() -> None:
    # Importing every module of the package runs its @register_attack decorators, so adding an attack
    # is adding a file: no list to keep in sync.
    global _loaded
    if _loaded:
        return
    import vidattack.attacks as pkg

    # walk_packages also finds the modules of subpackages (attacks/blackbox/vbad.py). Every module is
    # imported, helpers too (they are imported by the attacks anyway): a list of the modules that hold
    # no attack would be one more list to keep in sync.
    for mod in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
        if not mod.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(mod.name)
    _loaded = True


def attack_names() -> list[str]:
    """Every registered attack name, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def attack_class(name: str) -> type[Attack]:
    """The class registered as `name`; unknown names fail with close matches suggested."""
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_REGISTRY))}"
        raise UnknownAttackError(f"unknown attack {name!r}{hint}")
    return _REGISTRY[name]


def get_attack(name: str, **params: Any) -> Attack:
    """An attack instance with the paper's defaults, overridden by `params` (validated)."""
    cls = attack_class(name)
    known = {s.name for s in cls.params()}
    unknown = sorted(set(params) - known)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(known), n=3)
        hint = (
            f"; did you mean {', '.join(close)}?" if close else f"; {name} takes: {', '.join(sorted(known))}"
        )
        raise BadParameterError(f"unknown parameter {key!r} for attack {name}{hint}")
    return cls(**params)


Common = float | int | str | None


def get_attack_from_text(
    name: str,
    settings: dict[str, str],
    *,
    eps: Common = None,
    alpha: Common = None,
    steps: Common = None,
) -> Attack:
    """Like `get_attack`, with values given as command-line text (`--set eps=4/255`) and the common
    options `eps`, `alpha`, `steps` set on the attack's own budget, step size and iteration count.

    A common option may be a number or text (`4/255`, `auto`); it is refused with the attack's own
    name for it when `settings` also sets that parameter, and with what the attack has instead when
    it has no counterpart (see `Attack.common`).
    """
    from vidattack.attacks.params import parse_value, validate

    cls = attack_class(name)
    specs = {s.name: s for s in cls.params()}
    parsed: dict[str, Any] = {}
    for key, text in settings.items():
        if key not in specs:
            get_attack(name, **{key: None})  # raises the unknown-parameter error with suggestions
        parsed[key] = parse_value(specs[key], text)
    for option, value in (("eps", eps), ("alpha", alpha), ("steps", steps)):
        if value is None:
            continue
        own = cls.common_parameter(option)
        if own in settings:
            raise BadParameterError(f"{name}: --{option} and --set {own} set the same parameter; give one")
        spec = specs[own]
        parsed[own] = parse_value(spec, value) if isinstance(value, str) else validate(spec, value)
        if option == "steps" and parsed[own] == 0:
            # an attack with no iterations is a typo on the command line (`--set STEPS=0` still runs
            # an attack's start alone, as tests of random starts and initial patches do)
            raise BadParameterError("expected --steps of at least 1, got 0")
    return get_attack(name, **parsed)
