"""Help texts: snapshots of every command's --help, and rules every option and parameter follows.

The snapshots in tests/snapshots/ are what a user reads; a change to them is a change to review.
Regenerate them with `VIDATTACK_UPDATE_SNAPSHOTS=1 pytest tests/test_help.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vidattack.cli import app

SNAPSHOTS = Path(__file__).parent / "snapshots"
COMMANDS = ["", "perturb", "predict", "attacks", "models", "universal", "eval", "train", "serve"]

runner = CliRunner()


def help_text(command: str) -> str:
    args = [command, "--help"] if command else ["--help"]
    result = runner.invoke(app, args, prog_name="vidattack", env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_matches_its_snapshot(command):
    text = help_text(command)
    path = SNAPSHOTS / f"help-{command or 'vidattack'}.txt"
    if os.environ.get("VIDATTACK_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with VIDATTACK_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{path.name} changed: review, then regenerate the snapshot"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_and_names_no_bool_type(command):
    text = help_text(command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "<bool>" not in text, "on/off flags take no value"


def test_every_command_and_option_has_help():
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    assert set(commands) == set(COMMANDS[1:])
    for name, command in commands.items():
        assert (command.help or "").strip(), f"{name} has no help"
        assert command.params, name
        for param in command.params:
            text = getattr(param, "help", None)
            assert text and text.strip(), f"{name} {param.name} has no help"


def test_perturb_help_lists_every_output():
    from vidattack.pipeline.outputs import Outputs

    text = help_text("perturb")
    for path in Outputs.for_stem(Path("."), "S").all():
        assert path.name in text, path.name


def test_universal_help_cites_the_paper():
    text = " ".join(help_text("universal").split())
    assert 'Wei, Zhu and Su, "Sparse Adversarial Perturbations for Videos", AAAI 2019' in text


def test_no_parameter_help_sends_the_user_to_a_docstring():
    from vidattack.attacks import attack_names
    from vidattack.attacks.registry import attack_class

    offenders = {
        (name, spec.name)
        for name in attack_names()
        for spec in attack_class(name).params()
        if "docstring" in spec.help.lower() or not spec.help.strip()
    }
    assert not offenders, sorted(offenders)
