"""Typed, documented attack hyperparameters: declaration, parsing from text, validation.

An attack declares each hyperparameter as a keyword-only dataclass field made with `param()`, which
records its help text and range. The same declaration drives validation, `--set KEY=VALUE` parsing,
`vidattack attacks` and the report, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Union

from vidattack.errors import BadParameterError

AUTO = "auto"


def param(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A hyperparameter field: default (the paper's), help text, and its valid range or choices."""
    meta = {"help": help, "min": min, "max": max, "min_exclusive": min_exclusive, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamSpec:
    """One hyperparameter as the registry and CLI see it."""

    name: str
    type: Any
    default: Any
    help: str
    min: float | None
    max: float | None
    min_exclusive: bool
    choices: tuple[str, ...] | None

    def type_name(self) -> str:
        args = _type_args(self.type)
        names: list[str] = []
        for a in args:
            if typing.get_origin(a) is Literal:
                names.extend(repr(v) for v in typing.get_args(a))
            elif a is type(None):
                names.append("none")
            else:
                names.append(getattr(a, "__name__", str(a)))
        return " | ".join(names)

    @property
    def default_text(self) -> str:
        """The default as one would write it: 4/255, true, 300000, all (see `value_text`)."""
        return value_text(self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name(),
            "default": plain_value(self.default),
            "default_text": self.default_text,
            "help": self.help,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices else None,
        }


def _parsed_type(tp: Any) -> bool:
    """Is `tp` a value type parsed from text by its own `parse` classmethod (e.g. `FrameSpec`)?"""
    return isinstance(tp, type) and callable(getattr(tp, "parse", None))


def plain_value(value: Any) -> Any:
    """A JSON-ready form of a hyperparameter value: parsed types (a `FrameSpec`) as their text."""
    return str(value) if _parsed_type(type(value)) else value


def value_text(value: Any) -> str:
    """A value as one would write it on the command line: fractions of 255 as `k/255`, bools as
    true/false, None as none, other numbers in their shortest form."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        levels = value * 255.0
        # only where the decimal form is long: 0.2 (51/255) reads better as itself
        if len(repr(value)) > 8 and abs(levels - round(levels)) < 1e-9 and round(levels) != 0:
            return f"{round(levels)}/255"
        return repr(value) if len(repr(value)) <= 12 else format(value, ".12g")
    return str(value)


def _type_args(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def param_specs(cls: type) -> list[ParamSpec]:
    """The hyperparameters of an attack class, in declaration order."""
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        meta = f.metadata
        specs.append(
            ParamSpec(
                name=f.name,
                type=hints[f.name],
                default=f.default if f.default is not dataclasses.MISSING else None,
                help=meta.get("help", ""),
                min=meta.get("min"),
                max=meta.get("max"),
                min_exclusive=bool(meta.get("min_exclusive", False)),
                choices=meta.get("choices"),
            )
        )
    return specs


def parse_number(text: str) -> float:
    """A float from text, accepting fractions like `4/255`."""
    s = text.strip()
    try:
        if "/" in s:
            num, den = s.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected a number or a fraction like 4/255, got {text!r}") from None
    return value


def _parse_as(tp: Any, text: str) -> Any:
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if tp is int:
        value = parse_number(text)
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {text!r}")
        return int(value)
    if tp is float:
        return parse_number(text)
    if tp is str:
        return text
    if _parsed_type(tp):
        return tp.parse(text)
    if typing.get_origin(tp) is Literal:
        options = typing.get_args(tp)
        if text in options:
            return text
        raise ValueError(f"expected one of {', '.join(map(str, options))}, got {text!r}")
    if tp is type(None):
        if text.strip().lower() in ("none", "null", ""):
            return None
        raise ValueError(f"expected none, got {text!r}")
    raise ValueError(f"cannot parse {text!r} as {tp}")


def parse_value(spec: ParamSpec, text: str) -> Any:
    """Parse command-line text for one hyperparameter (tries each member of a union in order)."""
    errors = []
    # a str member accepts anything, so try it last
    members = sorted(_type_args(spec.type), key=lambda t: t is str)
    for tp in members:
        try:
            return _parse_as(tp, text)
        except (ValueError, BadParameterError) as e:
            errors.append(str(e))
    raise BadParameterError(f"{spec.name}: {errors[0] if errors else f'cannot parse {text!r}'}")


def _fits(tp: Any, value: Any) -> bool:
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp)
    if tp is float:
        return isinstance(value, int | float | Fraction) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is type(None):
        return value is None
    if typing.get_origin(tp) in (tuple, list):
        return isinstance(value, tuple | list)
    return isinstance(value, tp) if isinstance(tp, type) else True


def validate(spec: ParamSpec, value: Any) -> Any:
    """Check type and range; returns the value (ints given for floats become floats, text given for a
    parsed type such as `FrameSpec` is parsed)."""
    members = _type_args(spec.type)
    if isinstance(value, str):
        parsed = [tp for tp in members if _parsed_type(tp)]
        if parsed:
            try:
                value = parsed[0].parse(value)
            except BadParameterError as e:
                raise BadParameterError(f"{spec.name}: {e}") from None
    if not any(_fits(tp, value) for tp in members):
        raise BadParameterError(f"{spec.name}: expected {spec.type_name()}, got {value!r}")
    if isinstance(value, int | float | Fraction) and not isinstance(value, bool):
        if (float in members and not isinstance(value, int)) or (float in members and int not in members):
            value = float(value)
        if isinstance(value, float) and math.isnan(value):
            raise BadParameterError(f"{spec.name}: expected a number, got NaN")
        if spec.min is not None and (value < spec.min or (spec.min_exclusive and value == spec.min)):
            op = ">" if spec.min_exclusive else ">="
            raise BadParameterError(f"{spec.name}: expected {op} {spec.min:g}, got {value:g}")
        if spec.max is not None and value > spec.max:
            # a budget in [0, 1] given in 8-bit levels (`--eps 8`) most likely meant 8/255
            hint = f" (did you mean {value:g}/255?)" if spec.max == 1 and 1 < value <= 255 else ""
            raise BadParameterError(f"{spec.name}: expected <= {spec.max:g}, got {value:g}{hint}")
    if spec.choices is not None and isinstance(value, str) and value not in spec.choices:
        raise BadParameterError(f"{spec.name}: expected one of {', '.join(spec.choices)}, got {value!r}")
    return value
