"""`--robust-to` against a deployed model: every query is the candidate after a local delivery encode
(one EOT draw), sent losslessly; every request is charged to the budget and equals the service's count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import write_clip
from remote_support import run, serving
from typer.testing import CliRunner

from vidattack.delivery import DeliveryModel, MeteredDeliveryModel, parse_robust_to, roundtrip
from vidattack.video import load_video

runner = CliRunner()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A bright square moving over a gradient: smooth enough that a codec keeps its content."""
    t, size = 8, 32
    ramp = torch.linspace(40, 200, size).round().to(torch.uint8)
    frames = ramp.view(1, 1, size, 1).expand(t, size, size, 3).clone()  # (T, H, W, 3)
    for i in range(t):
        frames[i, 8:20, 2 + 2 * i : 14 + 2 * i] = 240
    return write_clip(tmp_path / "clip.mp4", frames)


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The frames of every video the test service classified, as it decoded them."""
    from vidattack.remote import serve

    seen: list[torch.Tensor] = []
    answer = serve.answer_file

    def recording(view, path, options):
        seen.append(load_video(path).frames)
        return answer(view, path, options)

    monkeypatch.setattr(serve, "answer_file", recording)
    return seen


def perturb(server, clip: Path, out: Path, *extra: object):
    return run(
        "perturb", clip, "-a", "vbad", "--model", server.url, "-o", out, "-f", "jsonl", "-q",
        "--set", "population=4", "--outputs", "adv,report", *extra,
    )  # fmt: skip


def test_the_service_receives_each_candidate_after_the_codec(c3d, clip, received, tmp_path):
    with serving(c3d) as server:
        assert perturb(server, clip, tmp_path / "plain", "--set", "max_queries=4").exit_code == 0
        plain = received[0]  # the clean-label query: the clip itself, losslessly
        received.clear()
        result = perturb(
            server, clip, tmp_path / "robust", "--set", "max_queries=4", "--robust-to", "h264:crf=51"
        )
        assert result.exit_code == 0, result.stderr
    source = load_video(clip).frames.float()
    assert torch.equal(plain.float(), source)
    # not the lossless clip: an error of the size the codec makes (libx264 need not repeat an encode
    # bit for bit, so the size of the error is compared, not the frames)
    codec_error = (roundtrip(source.byte(), parse_robust_to("h264:crf=51"), 8).float() - source).abs().mean()
    sent_error = (received[0].float() - source).abs().mean()
    assert codec_error > 5 and codec_error / 3 < sent_error < codec_error * 3


def test_every_request_is_charged_and_counted_by_the_report(c3d, clip, tmp_path):
    import jsonschema

    from vidattack.pipeline.report import report_schema

    out = tmp_path / "out"
    with serving(c3d) as server:
        result = perturb(server, clip, out, "--set", "max_queries=16", "--robust-to", "h264:crf=18-28")
        assert result.exit_code == 0, result.stderr
        report = json.loads((out / "clip.report.json").read_text())
        summary = json.loads((out / "queries.summary.json").read_text())
        sent = report["model"]["sent"]
        assert server.requests == sent["requests"] == summary["requests"] <= 16
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    assert report["queries"] <= 16
    robust = report["attack"]["robust_to"]
    assert robust["samples"] == 1 and robust["encodes"] == report["queries"]  # one draw per query
    assert "after a local h264:crf=18-28" in sent["codec"]
    # the written file is judged as the service sees it, from the cache; no extra check encode is sent
    assert sent["cache_hits"] >= 1 and report["delivery"] is None
    assert report["reencoded"]["label"] == report["adversarial"]["label"]


def test_resume_replays_every_answer_and_sends_nothing(c3d, clip, tmp_path):
    out = tmp_path / "out"
    args = ("--set", "max_queries=12", "--robust-to", "h264:crf=18-28")
    with serving(c3d) as server:
        assert perturb(server, clip, out, *args).exit_code == 0
        first = json.loads((out / "clip.report.json").read_text())
        before = server.requests
        (out / "clip.report.json").unlink()  # the input is unfinished again: its attack reruns
        result = perturb(server, clip, out, *args, "--resume")
        assert result.exit_code == 0, result.stderr
        # the same draws, keyed by candidate and draw: every answer comes from the log
        assert server.requests == before
    again = json.loads((out / "clip.report.json").read_text())
    assert again["queries"] == first["queries"] and again["adversarial"] == first["adversarial"]
    assert again["model"]["sent"]["requests"] == 0 and again["model"]["sent"]["replayed_from_log"] > 0


def test_several_eot_draws_per_query_are_refused_before_any_request(c3d, clip, tmp_path):
    with serving(c3d) as server:
        result = perturb(server, clip, tmp_path / "o", "--robust-to", "h264:crf=18-28,eot=2")
        assert result.exit_code == 2
        assert server.requests == 0
    assert "eot=2" in result.stderr and "use eot=1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_wrapper_never_hands_the_deployed_model_its_lossless_candidates():
    class Metered(torch.nn.Module):
        def metered(self, x, allowance):
            raise AssertionError("reached without the codec")

    spec = parse_robust_to("h264")
    # the plain wrapper has no `metered` of its own, so a QueryModel would run its forward (the codec)
    assert getattr(DeliveryModel(torch.nn.Identity(), spec), "metered", None) is None
    assert getattr(DeliveryModel(Metered(), spec), "metered", None) is None
    with pytest.raises(Exception, match="one EOT draw per query"):
        MeteredDeliveryModel(Metered(), spec, samples=2)


@pytest.mark.parametrize("robust", [["--robust-to", "h264:crf=18-28"], []], ids=["robust-to", "plain"])
def test_a_delivery_file_is_judged_by_one_request_kept_within_the_budget(c3d, clip, tmp_path, robust):
    out = tmp_path / "out"
    with serving(c3d) as server:
        result = perturb(server, clip, out, "--set", "max_queries=8", *robust, "--delivery", "h264")
        assert result.exit_code == 0, result.stderr
        report = json.loads((out / "clip.report.json").read_text())
        sent = report["model"]["sent"]
        # the attack leaves one request of max_queries for the delivery file's judgement: the service
        # never sees more than max_queries, and model.sent counts every one
        assert server.requests == sent["requests"] <= 8
        assert report["queries"] <= 8 - 1
    assert report["delivery"]["kept"] and report["delivery"]["prediction"]["label"]
    assert (out / "clip.delivery.mp4").exists()
