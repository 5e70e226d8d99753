"""Models say what they offer, attacks what they need; a mismatch is refused naming what fits."""

from types import SimpleNamespace

import pytest

from vidattack.errors import BadParameterError
from vidattack.models.capabilities import Capability, attack_needs, attacks_for, check_fits, model_offers


def test_an_in_process_torch_model_offers_gradients():
    assert model_offers(object()) is Capability.GRADIENTS


def test_white_box_attacks_need_gradients_and_vbad_needs_scores():
    from vidattack.attacks.registry import attack_class

    assert attack_needs(attack_class("pgd-linf")) is Capability.GRADIENTS
    assert attack_needs(attack_class("vbad")) is Capability.SCORES


def test_a_scores_only_model_is_offered_the_black_box_attacks():
    fits = attacks_for(Capability.SCORES)
    assert "vbad" in fits
    assert "pgd-linf" not in fits


def test_pgd_against_a_scores_only_model_is_refused_naming_what_fits():
    from vidattack.attacks.registry import attack_class

    onnx = SimpleNamespace(capabilities=Capability.SCORES)
    with pytest.raises(BadParameterError, match=r"model.onnx gives scores but no gradients.*use .*vbad"):
        check_fits(attack_class("pgd-linf"), onnx, "model.onnx")
    check_fits(attack_class("vbad"), onnx, "model.onnx")
