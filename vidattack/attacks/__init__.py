"""Attacks: one family per module, each class registered by name with `@register_attack`."""

from vidattack.attacks.base import Attack, Unsupported, loss_and_grad
from vidattack.attacks.context import AttackContext
from vidattack.attacks.counting import CountingModel
from vidattack.attacks.params import AUTO, param
from vidattack.attacks.registry import (
    attack_class,
    attack_names,
    get_attack,
    get_attack_from_text,
    register_attack,
)
from vidattack.attacks.result import AttackResult

__all__ = [
    "AUTO",
    "Attack",
    "AttackContext",
    "AttackResult",
    "CountingModel",
    "Unsupported",
    "attack_class",
    "attack_names",
    "get_attack",
    "get_attack_from_text",
    "loss_and_grad",
    "param",
    "register_attack",
]
