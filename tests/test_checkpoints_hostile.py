"""Hostile checkpoints and training states (issue #27): every refusal names the file, is found before
any data is loaded, and never repeats torch's advice to turn safe loading off."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from batch_support import run

from vidattack.errors import BadCheckpointError
from vidattack.models import load_model
from vidattack.models.checkpoint import check_state_file

ADVICE = "will likely succeed"


def pickle_with_a_global(path: Path) -> Path:
    """A torch.save file that needs a Python object besides tensors (harmless: an argparse.Namespace)."""
    torch.save({"args": argparse.Namespace(lr=0.1), "w": torch.zeros(2)}, path)
    return path


@pytest.fixture
def states(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.pt"
    torch.save({"epoch": 1, "w": torch.zeros(1000)}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    return {
        "good": good,
        "truncated": truncated,
        "empty": empty,
        "pickle": pickle_with_a_global(tmp_path / "p.pt"),
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated", "is truncated or not one (expected the zip archive train writes)"),
        ("empty", "is empty (0 bytes)"),
        ("pickle", "holds Python objects besides tensors (argparse.Namespace); refused"),
    ],
)
def test_a_bad_training_state_is_named(states, name: str, message: str) -> None:
    check_state_file(states["good"])
    with pytest.raises(BadCheckpointError) as e:
        check_state_file(states[name])
    assert str(e.value) == f"the training state {states[name]} {message}" + (
        "" if name != "pickle" else ": the states train writes hold tensors only"
    )


def test_train_resume_checks_the_state_before_loading_data(states, tmp_path: Path) -> None:
    # the data set does not exist: had it been read first, that would be the error
    result = run(
        "train", "--data", tmp_path / "no-such-data", "--arch", "tiny-c3d", "--out", tmp_path / "m.safetensors",
        "--resume", states["truncated"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: the training state {states['truncated']} is truncated or not one (expected the zip archive "
        "train writes)"
    )


def test_train_takes_trust_checkpoint_like_the_other_commands(tmp_path: Path) -> None:
    init = pickle_with_a_global(tmp_path / "init.pth")
    args = ("train", "--data", "synthetic:1", "--init", init, "--out", tmp_path / "m.safetensors")
    refused = run(*args)
    assert refused.exit_code == 2 and "pass --trust-checkpoint" in refused.stderr
    assert ADVICE not in refused.stderr
    trusted = run(*args, "--trust-checkpoint")  # loads it: it just holds no network we know
    assert trusted.exit_code == 2
    assert trusted.stderr.strip().startswith(f"Error: cannot tell the architecture of {init}: pass --arch")


def test_a_pickle_named_safetensors_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    fake = pickle_with_a_global(tmp_path / "model.safetensors")
    with pytest.raises(BadCheckpointError) as e:
        load_model(str(fake))
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"{fake} is named .safetensors but is not a safetensors file (")


def test_torch_advice_to_load_unsafely_is_never_repeated(tmp_path: Path) -> None:
    from vidattack.models.messages import first_line

    with pytest.raises(Exception) as e:
        torch.load(pickle_with_a_global(tmp_path / "p.pt"), weights_only=True)
    assert ADVICE in str(e.value)  # what torch says
    assert ADVICE not in first_line(e.value) and first_line(e.value).startswith("it holds more than tensors")
