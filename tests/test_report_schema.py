"""The report's published JSON Schema: every report validates, and the schema says what reports hold."""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch
from conftest import write_clip

from vidattack.pipeline import perturb_file
from vidattack.pipeline.report import SCHEMA_VERSION, report_schema


@pytest.fixture(scope="module")
def validator():
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def clip(tmp_path):
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (8, 40, 48, 3), generator=g, dtype=torch.uint8)
    frames[:, :4, :4] = 0  # black pixels: Linf attacks make ratio_max unbounded
    return write_clip(tmp_path / "noise.mp4", frames)


def test_a_report_on_disk_validates_against_the_schema(clip, toy, tmp_path, validator):
    returned = perturb_file(clip, "pgd-linf", model=toy, out_dir=tmp_path, device="cpu")
    on_disk = json.loads((tmp_path / "noise.report.json").read_text())

    assert not list(validator.iter_errors(on_disk)), [e.message for e in validator.iter_errors(on_disk)]
    assert json.loads(json.dumps(returned)) == on_disk
    assert on_disk["schema_version"] == SCHEMA_VERSION


def test_report_types_are_what_the_schema_promises(clip, toy, tmp_path):
    r = perturb_file(clip, "pgd-linf", model=toy, out_dir=tmp_path, device="cpu", heatmaps=False)

    assert r["perturbation"]["ratio_max"] is None and "unbounded" in r["perturbation"]["ratio_max_reason"]
    assert all(type(row["step"]) is int and type(row["queries"]) is int for row in r["history"])
    assert "libavcodec" in r["versions"] and r["versions"]["libavcodec"].count(".") == 2
    assert r["warnings"] == []
    assert set(r["outputs"]) == {"adversarial", "report"}


def test_the_schema_rejects_what_reports_must_not_hold(clip, toy, tmp_path, validator):
    r = json.loads(json.dumps(perturb_file(clip, "fgsm", model=toy, out_dir=tmp_path, device="cpu")))
    for broken in (
        {**r, "perturbation": {**r["perturbation"], "ratio_max": "inf"}},
        {**r, "history": [{"step": 1.5, "queries": 1}]},
        {**r, "surprise": 1},
        {k: v for k, v in r.items() if k != "schema_version"},
    ):
        assert list(validator.iter_errors(broken))


def test_every_report_key_is_described_in_the_schema():
    schema = report_schema()
    assert set(schema["required"]) == set(schema["properties"])
    undescribed = [k for k, v in schema["properties"].items() if not v.get("description")]
    assert not undescribed


def test_a_perturbation_learned_elsewhere_is_warned_about_and_recorded(
    clip, toy, tmp_path, caplog, validator
):
    from vidattack.attacks.universal import UniversalAttack, UniversalPerturbation

    pert = UniversalPerturbation(
        delta=torch.full((8, 40, 48, 3), 0.01), frames=list(range(8)), model="other-net"
    )
    with caplog.at_level("WARNING", logger="vidattack"):
        r = perturb_file(clip, UniversalAttack(perturbation=pert), model=toy, out_dir=tmp_path, device="cpu")

    assert r["warnings"] == ["the perturbation was learned on model other-net, applied to toy"]
    assert r["attack"]["info"]["learned_on"]["model"] == "other-net"
    assert "learned on model other-net" in caplog.text
    assert not list(validator.iter_errors(json.loads(json.dumps(r))))
