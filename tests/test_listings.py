"""Listings and help meant to be read: the same table whether stdout is a terminal or a pipe, one line
per attack in the short list, and metavars rather than Python types in every help text."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from vidattack.attacks import attack_names
from vidattack.cli import app

runner = CliRunner()  # stdout is not a terminal here, as when piped into `less`


def test_the_attack_list_is_a_short_table_even_when_piped():
    result = runner.invoke(app, ["attacks"], env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and not result.stdout.lstrip().startswith("{")
    assert len(lines) == len(attack_names()) + 2  # a title, a header, one line per attack
    pgd = next(line for line in lines if line.split()[:1] == ["pgd-linf"])
    assert "white-box" in pgd and "Madry et al." in pgd
    assert all(len(line) <= 80 for line in lines)


def test_one_attack_shows_its_parameters_and_json_stays_json():
    table = runner.invoke(app, ["attacks", "pgd-linf"]).stdout
    assert "parameter" in table and "default" in table and "4/255" in table
    listed = json.loads(runner.invoke(app, ["attacks", "--format", "json"]).stdout)
    assert [a["name"] for a in listed["attacks"]] == attack_names()


@pytest.mark.parametrize("command", ["perturb", "predict", "attacks", "models", "universal", "train", "eval"])
def test_help_shows_metavars_never_python_types(command):
    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "100"}).stdout
    assert not re.search(r"<(str|int|float|path|bool|list\[[^>]*\]|int range|float range)>", text), text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eps", "8"], "eps: expected <= 1, got 8 (did you mean 8/255?)"),
        (
            ["--format", "xml"],
            "Invalid value for '--format' / '-f': 'xml' is not one of 'table', 'json', 'jsonl'.",
        ),
        (["--model", "nonexistent"], "(bundled models: tiny-c3d, "),
        (["--target", "nope"], "(labels: move_left, move_right, "),
    ],
)
def test_a_mistake_is_answered_with_what_fits(args, message, tmp_path):
    from conftest import EXAMPLES

    result = runner.invoke(app, ["perturb", str(EXAMPLES / "still_1.mp4"), "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Value error" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1
