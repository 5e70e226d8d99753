"""`--eps`, `--alpha` and `--steps`: one reading for `perturb`, `eval` and `train`.

Each option sets the attack's own parameter (`Attack.common`: `eps_m` and `alpha_m` for MultAV). One
rule makes the same text mean the same pixel budget for every attack: an additive value e in [0, 1)
given to a ratio-bounded parameter (one whose minimum is 1: MultAV-Linf's `eps_m` and `alpha_m`,
and its region variants') becomes the ratio bound 1 + e. Values >= 1 are ratio bounds as given
(`--eps 1.04`). MultAV-L2's `eps_m` (a norm of the log-ratio, any value >= 0) is taken as given.

Why 1 + e: a pixel in [0, 1] kept within max(x'/x, x/x') <= 1 + e moves by at most e / (1 + e) < e,
so the multiplicative attack stays inside the additive Linf ball of the same e, short of its edge by
e^2 / (1 + e) (under 0.25/255 for e up to 8/255). `--eps 4/255` then compares PGD and MultAV at
(nearly) the same pixel budget, in a single run or across an eval grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vidattack.errors import BadParameterError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack


@dataclass(frozen=True)
class Budget:
    """`--eps`, `--alpha` and `--steps`, parsed once; None where not given. `alpha` may be a word the
    attack or the caller understands (`auto`; `eps` for training)."""

    eps: float | None = None
    alpha: float | str | None = None
    steps: int | None = None

    def for_attack(self, cls: type[Attack]) -> Budget:
        """This budget in `cls`'s own units: the ratio rule of the module applied to `eps` and `alpha`."""
        alpha = self.alpha if isinstance(self.alpha, str) else own_value(cls, "alpha", self.alpha)
        return replace(self, eps=own_value(cls, "eps", self.eps), alpha=alpha)


def _number(option: str, text: str) -> float:
    from vidattack.attacks.params import parse_number

    try:
        return parse_number(text)
    except ValueError as e:
        raise BadParameterError(f"{option}: {e}") from None


def parse_budget(
    eps: str | None,
    alpha: str | None,
    steps: str | None,
    *,
    alpha_words: tuple[str, ...] = ("auto",),
) -> Budget:
    """Parse the common options (fractions allowed; `alpha` one of `alpha_words`), naming the option on
    failure. The values are additive; `Budget.for_attack` turns them into an attack's own units."""
    alpha_value: float | str | None = None
    if alpha is not None:
        word = alpha.strip().lower()
        alpha_value = word if word in alpha_words else _number("alpha", alpha)
    steps_value = None
    if steps is not None:
        s = _number("steps", steps)
        if not s.is_integer():
            raise BadParameterError(f"steps: expected an integer, got {steps!r}")
        steps_value = int(s)
    return Budget(None if eps is None else _number("eps", eps), alpha_value, steps_value)


def own_parameter(cls: type[Attack], option: str) -> str | None:
    """The attack's own parameter a common option (`eps`, `alpha`, `steps`) sets; None if it has none."""
    try:
        return cls.common_parameter(option)
    except BadParameterError:
        return None


def own_value(cls: type[Attack], option: str, value: float | None) -> float | None:
    """`value` as `cls`'s own `option` parameter takes it: unchanged, except that an additive e in
    [0, 1) given to a ratio-bounded parameter (minimum 1) becomes 1 + e (see the module)."""
    if value is None:
        return None
    own = own_parameter(cls, option)
    spec = next((s for s in cls.params() if s.name == own), None)
    if spec is None or spec.min != 1:
        return value
    return 1.0 + value if 0 <= value < 1 else value


def attack_with_budget(name: str, settings: Mapping[str, str], budget: Budget) -> Attack:
    """The registered attack `name` with `--set` text `settings` and the common options in `budget`
    (additive values, put into the attack's own units here)."""
    from vidattack.attacks.registry import attack_class, get_attack_from_text

    own = budget.for_attack(attack_class(name))
    return get_attack_from_text(name, dict(settings), eps=own.eps, alpha=own.alpha, steps=own.steps)
