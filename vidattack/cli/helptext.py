"""Help that shows metavars, never Python types; usage errors without a validator's prefix.

Typer prints an argument's Python type beside its name (`INPUT <list[str]>`, `NAME <str>`) and an
option without a metavar as its type (`--gan-weight <float range>`, `--data <str>`). What to give is
said by the metavar and the help text, so arguments show their metavar alone and options without one
show their own name in capitals (`--gan-weight GAN_WEIGHT`); a choice keeps its values
(`<table|json|jsonl>`), which are what to give.

Typer checks choices through pydantic, whose message for a bad value starts with `Value error, `
(`--format xml`); that prefix is left out, so the message reads as every other usage error.
"""

from __future__ import annotations

from typing import Any

from typer import _coercion as typer_coercion
from typer import _param_types as typer_param_types
from typer.core import TyperArgument, TyperOption

_typer_error_message = typer_param_types.get_error_msg


def _argument_type(self: TyperArgument, ctx: Any) -> str | None:
    return None


def _option_type(self: TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.type_descriptor.is_choice:
        return self.display_type(ctx)
    name = (self.name or "value").upper()
    return f"{name}..." if self.nargs != 1 else name


def _error_message(exc: Any) -> str:
    return _typer_error_message(exc).removeprefix("Value error, ")


def use_metavars() -> None:
    """Make every command's help show metavars instead of Python types (once, at import of the app)."""
    patched: Any = TyperArgument
    patched.display_type_rich = _argument_type
    patched = TyperOption
    patched.display_type_rich = _option_type
    for module in (typer_param_types, typer_coercion):  # each imported the function by name
        patched = module
        patched.get_error_msg = _error_message
