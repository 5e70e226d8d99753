"""What a model offers and what an attack needs, checked before any video is decoded.

Three levels, each including the ones below it (ART's estimator requirements, in three words):

- `LABELS`: the model answers only its top label (a deployed service that returns `{"label": ...}`);
- `SCORES`: it answers probabilities too (an ONNX export, a service returning label/score pairs);
- `GRADIENTS`: it is a differentiable torch module in this process (bundled, torchvision, TorchScript,
  a HuggingFace folder).

A white-box attack needs gradients; a score-based black-box attack (V-BAD, its ablations) needs scores;
a decision-based attack (HopSkipJump) needs labels only. A model that offers less than an attack needs
is refused with a message naming the attacks that do fit, before any decoding.
"""

from __future__ import annotations

import enum
from typing import Any

from vidattack.errors import BadParameterError


class Capability(enum.IntEnum):
    """What a model offers, ordered: each level includes every level below it."""

    LABELS = 1
    SCORES = 2
    GRADIENTS = 3

    def describe(self) -> str:
        """What a model offering this gives, in words: "scores but no gradients"."""
        return {
            Capability.LABELS: "labels only",
            Capability.SCORES: "scores but no gradients",
            Capability.GRADIENTS: "gradients",
        }[self]

    @property
    def noun(self) -> str:
        """What an attack needing this needs, in one word: "gradients"."""
        return self.name.lower()


def model_offers(model: Any) -> Capability:
    """A model's capability: its `capabilities` attribute, else its network's (a `ModelView` whose `net`
    runs outside torch, such as an ONNX session), else gradients for an in-process torch model."""
    declared: Any = getattr(model, "capabilities", None)
    if declared is None:
        declared = getattr(getattr(model, "net", None), "capabilities", Capability.GRADIENTS)
    return Capability(declared)


def attack_needs(attack: Any) -> Capability:
    """What an attack (class or instance) needs: its `needs` attribute when it declares one (an
    instance's property; its class then falls back), else gradients for a white-box attack and scores
    for a black-box one."""
    declared = getattr(attack, "needs", None)
    if isinstance(declared, property):  # decided per instance (universal: applying needs only scores)
        declared = None
    if declared is not None:
        return Capability(declared)
    return Capability.GRADIENTS if getattr(attack, "white_box", True) else Capability.SCORES


def attacks_for(offers: Capability) -> list[str]:
    """The registered attacks a model offering `offers` can run, by name."""
    from vidattack.attacks.registry import attack_class, attack_names

    return [name for name in attack_names() if attack_needs(attack_class(name)) <= offers]


def check_fits(attack: Any, model: Any, model_name: str) -> None:
    """Refuse (a usage error) an attack that needs more than the model offers, naming what fits."""
    needs, offers = attack_needs(attack), model_offers(model)
    if needs <= offers:
        return
    fits = attacks_for(offers)
    hint = f"use {', '.join(fits)}" if fits else "no registered attack fits it"
    name = getattr(attack, "name", "") or type(attack).__name__
    raise BadParameterError(f"{model_name} gives {offers.describe()}, and {name} needs {needs.noun}: {hint}")
