"""Mixed precision (#25): the attack's steps run under autocast; everything that decides a result is
float32 (clean label, judging, stop checks, budgets); `auto` resolves per device; fp16 is refused on
the CPU and scaled on CUDA; reports and the commands carry the choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from conftest import write_clip
from torch import Tensor, nn
from typer.testing import CliRunner

import vidattack.attacks.base as attack_base
import vidattack.precision as precision
from vidattack.attacks import get_attack
from vidattack.cli import app
from vidattack.errors import BadParameterError
from vidattack.pipeline import perturb_file
from vidattack.pipeline.report import report_schema
from vidattack.precision import LossScale, attack_precision, cpu_has_native_bf16, resolve_precision

E = 1 / 255


class Recording(nn.Module):
    """Forwards to a bound model and records, per call, whether autocast and grad were on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.plan = model.plan
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append((torch.is_autocast_enabled("cpu"), torch.is_grad_enabled()))
        return self.model(x)


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the CPU computes bf16 natively, so the tests run the bf16 path on any CPU."""
    monkeypatch.setattr(precision, "device_has_native_bf16", lambda device: True)


# -- resolving ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "native", "expected"),
    [("cpu", True, "bf16"), ("cpu", False, "fp32"), ("cuda", True, "bf16"), ("cuda", False, "fp32")],
)
def test_auto_is_bf16_exactly_where_the_device_computes_it_natively(device, native, expected) -> None:
    assert resolve_precision("auto", device, native_bf16=native) == expected


def test_native_bf16_on_a_cpu_is_read_from_its_flags() -> None:
    assert cpu_has_native_bf16(frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_has_native_bf16(frozenset({"amx_tile", "amx_bf16"}))
    assert not cpu_has_native_bf16(frozenset({"avx2", "avx512f", "avx512_vnni"}))


def test_fp32_and_the_half_precisions_resolve_to_themselves_where_they_can_run() -> None:
    assert resolve_precision("fp32", "cpu", native_bf16=False) == "fp32"
    assert resolve_precision("bf16", "cpu", native_bf16=True) == "bf16"
    assert resolve_precision("fp16", "cuda", native_bf16=True) == "fp16"


@pytest.mark.parametrize(
    ("requested", "native", "message"),
    [
        ("fp16", True, "expected a CUDA device for --precision fp16, got cpu"),
        ("bf16", False, "expected a device that computes bf16 natively for --precision bf16, got cpu"),
        ("half", True, "expected a precision among auto, fp32, bf16, fp16, got 'half'"),
    ],
)
def test_what_cannot_run_is_refused_with_a_reason(requested, native, message) -> None:
    with pytest.raises(BadParameterError, match=message):
        resolve_precision(requested, "cpu", native_bf16=native)


# -- the template: bf16 steps, float32 decisions ------------------------------------------------------


def test_bf16_steps_run_under_autocast_and_every_decision_in_float32(toy, toy_video, native_bf16) -> None:
    model = Recording(toy.bind(toy.plan(toy_video.shape[1])))
    attack = get_attack("pgd-linf", eps=4 * E, alpha=E, steps=3)

    result = attack(model, toy_video, precision="bf16", stop_when_fooled=50.0)

    clean, *middle, judge = model.calls
    assert clean == (False, False)  # the clean label: float32, no graph kept for a bf16 step
    assert judge == (False, False)  # judging the quantized video
    steps = [c for c in middle if c[1]]
    checks = [c for c in middle if not c[1]]
    assert steps == [(True, True)] * 3  # each gradient step under autocast
    assert checks == [(False, False)] * 2  # stop-when-fooled checks after steps 1 and 2: float32
    assert result.precision == "bf16"


def test_a_bf16_result_is_what_float32_judging_of_it_says(toy, toy_video, native_bf16) -> None:
    model = toy.bind(toy.plan(toy_video.shape[1]))
    eps = 4 * E

    result = get_attack("pgd-linf", eps=eps, alpha=E, steps=4).__call__(model, toy_video, precision="bf16")

    with torch.no_grad():
        clean32 = model(toy_video)
        adv32 = model(result.adversarial)
    assert result.adversarial.dtype == torch.float32
    assert torch.equal(result.clean_log_probs, clean32)
    assert torch.equal(result.adversarial_log_probs, adv32)
    assert torch.equal(result.success, adv32.argmax(1) != clean32.argmax(1))
    levels = result.adversarial * 255
    assert torch.equal(levels, levels.round())  # on the 8-bit grid the file holds
    assert float((result.adversarial - toy_video).abs().max()) <= eps + 1e-6


def test_bf16_moves_the_video_as_fp32_does_on_a_small_model(toy, toy_video, native_bf16) -> None:
    model = toy.bind(toy.plan(toy_video.shape[1]))
    attack = get_attack("pgd-linf", eps=4 * E, alpha=E, steps=2)
    fp32 = attack(model, toy_video, precision="fp32")
    bf16 = attack(model, toy_video, precision="bf16")
    same_step = (fp32.adversarial - toy_video).sign() == (bf16.adversarial - toy_video).sign()
    assert float(same_step.float().mean()) > 0.8  # sign steps agree on most pixels
    assert fp32.precision == "fp32" and bf16.precision == "bf16"


def test_a_block_sets_the_precision_of_calls_that_give_none(toy, toy_video, native_bf16) -> None:
    model = toy.bind(toy.plan(toy_video.shape[1]))
    attack = get_attack("fgsm", eps=2 * E)
    with attack_precision("bf16"):
        inside = attack(model, toy_video)
        own = attack(model, toy_video, precision="fp32")
    assert (inside.precision, own.precision, attack(model, toy_video).precision) == ("bf16", "fp32", "fp32")


def test_fp16_on_the_cpu_is_refused_before_any_forward(toy, toy_video) -> None:
    model = Recording(toy.bind(toy.plan(toy_video.shape[1])))
    with pytest.raises(BadParameterError, match="CUDA device for --precision fp16"):
        get_attack("pgd-linf")(model, toy_video, precision="fp16")
    assert model.calls == []


def test_a_black_box_attack_runs_and_reports_fp32_whatever_is_asked(toy, toy_video) -> None:
    model = toy.bind(toy.plan(toy_video.shape[1]))
    result = get_attack("vbad")(model, toy_video, precision="auto", max_queries=6)
    assert result.precision == "fp32"


def test_a_torchscript_model_runs_fp32_under_auto_and_refuses_bf16(toy, toy_video, native_bf16) -> None:
    # TorchScript's compiled backward fails on mixed precisions ("expected scalar type BFloat16")
    toy.net = torch.jit.trace(toy.net, torch.rand(1, 3, 8, 40, 48))
    model = toy.bind(toy.plan(toy_video.shape[1]))
    assert get_attack("pgd-linf", steps=1)(model, toy_video, precision="auto").precision == "fp32"
    with pytest.raises(BadParameterError, match="got a TorchScript model"):
        get_attack("pgd-linf", steps=1)(model, toy_video, precision="bf16")


# -- fp16's loss scale ---------------------------------------------------------------------------------


def test_an_overflowed_gradient_is_recomputed_at_half_the_scale_never_used() -> None:
    scale = LossScale(scale=2.0**12)
    seen = []

    def backward(factor: float) -> Tensor:  # overflows above 2**10, like a float16 backward would
        seen.append(factor)
        return torch.full((3,), float("inf") if factor > 2**10 else 0.5 * factor)

    grad = scale.grad_of(backward)

    assert seen == [2.0**12, 2.0**11, 2.0**10]
    assert torch.equal(grad, torch.full((3,), 0.5))  # unscaled
    assert scale.scale == 2.0**10


def test_the_scale_grows_back_after_clean_steps_and_gives_up_unscaled() -> None:
    scale = LossScale(scale=4.0, growth_interval=2)
    for _ in range(2):
        scale.grad_of(lambda f: torch.ones(2) * f)
    assert scale.scale == 8.0
    with pytest.raises(BadParameterError, match="overflows float16"):
        scale.grad_of(lambda f: torch.full((2,), float("nan")))


def test_fp16_steps_go_through_the_loss_scale(toy, toy_video, monkeypatch) -> None:
    # fp16 autocast is only offered on CUDA; its loss-scaled backward is device-independent
    scales: list[float] = []
    grad_of = LossScale.grad_of

    def spy(self: LossScale, backward: Any) -> Tensor:
        scales.append(self.scale)
        return grad_of(self, backward)

    monkeypatch.setattr(LossScale, "grad_of", spy)
    model = toy.bind(toy.plan(toy_video.shape[1]))
    with precision.optimising("fp16", "cpu"):
        _, _, grad = attack_base.loss_and_grad(model, toy_video, lambda lp: -lp[:, 0])
    _, _, grad32 = attack_base.loss_and_grad(model, toy_video, lambda lp: -lp[:, 0])
    assert scales == [2.0**16]
    assert grad.dtype == torch.float32
    assert float(torch.cosine_similarity(grad.flatten(), grad32.flatten(), dim=0)) > 0.95  # unscaled


# -- reports and commands -----------------------------------------------------------------------------


def test_the_report_records_the_precision_that_ran(toy, tmp_path, native_bf16) -> None:
    g = torch.Generator().manual_seed(3)
    clip = write_clip(tmp_path / "noise.mp4", torch.randint(0, 256, (8, 40, 48, 3), generator=g).byte())
    perturb_file(clip, "pgd-linf", model=toy, out_dir=tmp_path / "o", device="cpu", precision="auto")
    report = json.loads((tmp_path / "o" / "noise.report.json").read_text())
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    assert report["attack"]["precision"] == "bf16"
    assert report["success"] == (report["adversarial"]["index"] != report["clean"]["index"])


def _precisions_asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []
    resolve = attack_base.resolve_for_model

    def spy(requested: str, device: Any, model: nn.Module) -> Any:
        asked.append(requested)
        return resolve(requested, device, model)

    monkeypatch.setattr(attack_base, "resolve_for_model", spy)
    monkeypatch.setattr(precision, "device_has_native_bf16", lambda device: True)
    return asked


@pytest.mark.slow  # a whole eval/train run (about 5 s on a quiet 2-core machine)
def test_eval_runs_its_attacks_at_the_precision_given(tmp_path: Path, monkeypatch) -> None:
    asked = _precisions_asked(monkeypatch)
    args = ["eval", "synthetic:1", "--shard", "1/5", "--attack", "fgsm", "--eps", "2/255", "--threads", "1"]
    r = CliRunner().invoke(app, [*args, "--precision", "bf16", "--out", str(tmp_path / "e"), "-f", "json"])
    assert r.exit_code == 0, r.output
    assert asked and set(asked) == {"bf16"}


@pytest.mark.slow  # a whole eval/train run (about 5 s on a quiet 2-core machine)
def test_train_runs_its_attacks_at_the_precision_given(tmp_path: Path, monkeypatch) -> None:
    asked = _precisions_asked(monkeypatch)
    r = CliRunner().invoke(
        app,
        [
            *("train", "--init", "tiny-c3d", "--data", "synthetic:1:5", "--heldout", "synthetic:1:6"),
            *("--adversarial", "fgsm", "--eps", "2/255", "--epochs", "1", "--batch-size", "10"),
            *(
                "--eval-size",
                "0",
                "--threads",
                "1",
                "--out",
                str(tmp_path / "m.safetensors"),
                "-f",
                "json",
                "--quiet",
            ),
            *("--precision", "bf16"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert asked and set(asked) == {"bf16"}


@pytest.mark.parametrize("command", ["perturb", "eval", "train"])
def test_fp16_on_the_cpu_is_a_one_line_usage_error(command: str, tmp_path: Path) -> None:
    args = {
        "perturb": ["perturb", "examples/still_1.mp4", "--device", "cpu", "-o", str(tmp_path / "o")],
        "eval": ["eval", "synthetic:1", "--device", "cpu", "--out", str(tmp_path / "o")],
        "train": ["train", "--arch", "tiny-c3d", "--data", "synthetic:1", "--out", str(tmp_path / "m")],
    }[command]
    r = CliRunner().invoke(app, [*args, "--precision", "fp16"])
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: expected a CUDA device for --precision fp16, got cpu")
    assert r.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists() and not (tmp_path / "m").exists()


def test_an_eval_cell_keys_the_precision_its_steps_ran_in(native_bf16) -> None:
    # eval resumes by key: records made in bf16 must not be taken for the fp32 cell, as in perturb
    from vidattack.eval import build_grid
    from vidattack.models import load_model

    view = load_model("tiny-c3d")
    (fp32,) = build_grid(["fgsm"], view, eps=["2/255"])
    (bf16,) = build_grid(["fgsm"], view, eps=["2/255"], precision="bf16")
    (auto,) = build_grid(["fgsm"], view, eps=["2/255"], precision="auto")
    assert (fp32.precision, bf16.precision, auto.precision) == ("fp32", "bf16", "bf16")
    assert fp32.key != bf16.key == auto.key  # `auto` is keyed as what it became
    assert bf16.spec.precision == "bf16" and "precision=bf16" in bf16.label
    assert type(bf16).from_dict(bf16.to_dict()) == bf16
