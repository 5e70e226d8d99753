"""Help that shows metavars, never Python types.

Typer prints an argument's Python type beside its name (`INPUT <list[str]>`, `NAME <str>`) and an
option without a metavar as its type (`--gan-weight <float range>`, `--data <str>`). What to give is
said by the metavar and the help text, so arguments show their metavar alone and options without one
show their own name in capitals (`--gan-weight GAN_WEIGHT`); a choice keeps its values
(`<table|json|jsonl>`), which are what to give.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperOption


def _argument_type(self: TyperArgument, ctx: Any) -> str | None:
    return None


def _option_type(self: TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.type_descriptor.is_choice:
        return self.display_type(ctx)
    name = (self.name or "value").upper()
    return f"{name}..." if self.nargs != 1 else name


def use_metavars() -> None:
    """Make every command's help show metavars instead of Python types (once, at import of the app)."""
    patched: Any = TyperArgument
    patched.display_type_rich = _argument_type
    patched = TyperOption
    patched.display_type_rich = _option_type
