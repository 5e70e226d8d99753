"""TODO(merge): delete this module; its names come from the core engineer's branch.

- `vidattack.attacks.registry.get_attack_from_text(name, settings, *, eps=, alpha=, steps=)` maps the
  common options onto each attack's own parameter names;
- `vidattack.attacks.params.ParamSpec.default_text` renders a default as written (4/255, true).

Until then this passes the common options on as `--set` text (a float's repr parses back exactly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.attacks.params import ParamSpec


def get_attack_from_text(
    name: str,
    settings: dict[str, str],
    *,
    eps: float | None = None,
    alpha: float | str | None = None,
    steps: int | None = None,
) -> Attack:
    from vidattack.attacks.registry import get_attack_from_text as by_text

    common = {
        k: repr(v) if isinstance(v, float) else str(v)
        for k, v in (("eps", eps), ("alpha", alpha), ("steps", steps))
        if v is not None
    }
    return by_text(name, {**settings, **common})


def default_text(spec: ParamSpec) -> str:
    value: Any = spec.default
    return f"{value:.4g}" if isinstance(value, float) else str(value)
