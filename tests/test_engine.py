"""Batched attacks, early stopping and the pipelined batch engine (issue #12).

A video attacked in a batch must come out exactly as when attacked alone at the same seed. The model's
own arithmetic is the one thing a batch may change: CPU convolutions (oneDNN) and the BLAS behind a
Linear layer pick kernels by batch size and differ in the last bits (about 1e-6 in log-probabilities on
tiny-c3d). The identity tests therefore use `PerVideo`, a model evaluated one video at a time, so they
check everything the attack code does per video bit for bit; the last test shows what holds with the
real batched arithmetic.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, bind_plan, toy_view
from torch import nn

from vidattack.attacks import get_attack
from vidattack.errors import BadParameterError
from vidattack.models.view import BoundModel, ModelView


class PerVideo(nn.Module):
    """`model` run on one video at a time: batch-invariant arithmetic, the deterministic path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.plan = model.plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(x[i : i + 1]) for i in range(x.shape[0])])


def videos(n: int, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 8, 3, 40, 48), generator=g).float() / 255  # (N, T, C, H, W)


def model_for(view):
    return PerVideo(bind_plan(view, tuple(range(8)), 8))


def assert_same(alone, batched):
    assert torch.equal(alone.adversarial, batched.adversarial)
    assert torch.equal(alone.adversarial_log_probs, batched.adversarial_log_probs)
    assert torch.equal(alone.success, batched.success)
    assert alone.queries == batched.queries
    assert alone.norms == batched.norms
    assert alone.info == batched.info
    assert alone.history == batched.history


CASES = [
    ("pgd-linf", {"random_start": True, "steps": 4}),
    ("pgd-l2", {"random_start": True, "eps": 2.0, "alpha": 0.5, "steps": 3}),
    ("multav-linf", {"steps": 4}),
    ("roa", {"height": 10, "width": 10, "stride": 10, "steps": 3}),
    ("roa", {"height": 10, "width": 10, "search": "random", "placement": "per-frame", "steps": 2}),
    ("spa", {"pixels": 20, "selection": "random", "steps": 2}),
    ("masked-pgd", {"steps": 2, "random_start": True}),
]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("stop", [None, 0.0])
def test_a_batched_video_equals_the_video_attacked_alone(name, params, stop):
    view = toy_view()
    model, x = model_for(view), videos(3)
    attack = get_attack(name, **params)
    assert attack.batchable
    batched = attack(model, x, seed=5, stop_when_fooled=stop).split()
    for i in range(3):
        alone = attack(model, x[i : i + 1], seed=5, stop_when_fooled=stop)
        assert_same(alone, batched[i])


def test_n1_random_start_is_the_single_generator_of_before():
    # one video draws exactly what the template's one generator drew before per-video generators
    view = toy_view()
    x = videos(1)
    start = get_attack("pgd-linf", random_start=True, steps=0)(model_for(view), x, seed=9).adversarial
    g = torch.Generator().manual_seed(9)
    noise = (torch.rand(x.shape, generator=g) * 2 - 1) * (4 / 255)
    expected = (x + noise).clamp(x - 4 / 255, x + 4 / 255).clamp(0, 1)
    assert torch.allclose(start, expected, atol=1 / 255)


def test_stop_when_fooled_freezes_each_video_at_the_step_it_was_fooled():
    view = toy_view()
    model, x = model_for(view), videos(4)
    attack = get_attack("pgd-linf", eps=16 / 255, alpha=2 / 255, steps=12)
    result = attack(model, x, seed=0, stop_when_fooled=0.5)
    stopped = result.info["stopped_at"]
    assert len(stopped) == 4 and any(s is not None for s in stopped)
    for i, part in enumerate(result.split()):
        k = stopped[i]
        if k is None:
            continue
        # the frozen iterate is the k-step attack's, and it is fooled by the margin on the 8-bit file
        plain = get_attack("pgd-linf", eps=16 / 255, alpha=2 / 255, steps=k)(model, x[i : i + 1], seed=0)
        assert torch.equal(part.adversarial, plain.adversarial)
        assert float(result.adversarial_log_probs[i].topk(2).values.diff().abs()) > 0.5 or part.success
        assert part.success.all()
        # a row per step taken, then the judged iterate after step k that stopped it (fooled)
        assert (
            len(part.history) == k + 1 and part.history[-1]["step"] == k and part.history[-1]["fooled"] == 1
        )
        # queries: k steps (the first on the clean pass) and a judging pass after each
        assert part.queries == 2 * k


def test_stop_when_fooled_is_off_by_default_and_refused_where_it_means_nothing(toy, toy_video):
    model = bind_plan(toy, tuple(range(8)), 8)
    result = get_attack("pgd-linf", steps=3)(model, toy_video)
    assert "stopped_at" not in result.info and result.queries == 3
    with pytest.raises(BadParameterError, match="fgsm cannot stop when fooled"):
        get_attack("fgsm")(model, toy_video, stop_when_fooled=0.0)
    with pytest.raises(BadParameterError, match="frame-saliency cannot stop when fooled"):
        get_attack("frame-saliency")(model, toy_video, stop_when_fooled=0.0)
    with pytest.raises(BadParameterError, match="margin >= 0"):
        get_attack("pgd-linf")(model, toy_video, stop_when_fooled=-1.0)


def test_batches_with_real_batched_arithmetic_differ_at_most_in_float_noise(c3d):
    # tiny-c3d as the CLI runs it: oneDNN convolutions over the whole batch
    from vidattack.models.view import sampled_frames
    from vidattack.video import load_video

    clips = ["move_left_1", "move_right_2", "still_1"]
    frames = [load_video(EXAMPLES / f"{c}.mp4").frames for c in clips]
    plan = c3d.plan(frames[0].shape[0])
    model = c3d.bind(plan)
    x = torch.cat([sampled_frames(f, plan) for f in frames])
    attack = get_attack("pgd-linf", random_start=True, steps=3)
    batched = attack(model, x, seed=1).split()
    for i in range(len(clips)):
        alone = attack(model, x[i : i + 1], seed=1)
        assert torch.allclose(alone.adversarial_log_probs, batched[i].adversarial_log_probs, atol=1e-4)
        changed = (alone.adversarial - batched[i].adversarial).abs()
        assert float(changed.max()) <= 2 / 255 + 1e-6  # a flipped sign moves a pixel by at most 2 steps
        assert alone.queries == batched[i].queries


# -- the engine ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    path: Path
    stem: str


def _comparable(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("timing")
    return report


@pytest.mark.parametrize("batch_size", [1, 3])
def test_engine_yields_what_perturb_file_gives_in_input_order(tmp_path, batch_size):
    from vidattack import load_model
    from vidattack.pipeline import perturb_file
    from vidattack.pipeline.engine import perturb_many

    c3d = load_model("tiny-c3d", device="cpu")
    view = PerVideoView(**{f.name: getattr(c3d, f.name) for f in dataclasses.fields(c3d)})
    names = ["move_left_1", "missing", "still_1", "move_right_2", "zoom_in_1"]
    items = [Item(EXAMPLES / f"{n}.mp4", n) for n in names]
    attack = get_attack("pgd-linf", random_start=True, steps=2)
    done: list[str] = []
    records = list(
        perturb_many(
            items, attack, model=view, out_dir=tmp_path / "many", seed=4, device="cpu",
            batch_size=batch_size, stop_when_fooled=0.0, done=lambda item: done.append(item.stem),
        )
    )  # fmt: skip
    assert [r["input"] for r in records] == [str(i.path) for i in items]
    assert records[1]["status"] == "error" and "missing" in records[1]["error"]
    assert sorted(done) == sorted(names)
    for item, record in zip(items, records, strict=True):
        if item.stem == "missing":
            continue
        alone = perturb_file(
            item.path, attack, model=view, out_dir=tmp_path / "one", seed=4, device="cpu",
            stem=item.stem, stop_when_fooled=0.0,
        )  # fmt: skip
        assert _comparable(record) == json.loads(
            json.dumps(_comparable(alone)).replace(str(tmp_path / "one"), str(tmp_path / "many"))
        )
        written = Path(record["outputs"]["adversarial"]).read_bytes()
        assert written == Path(alone["outputs"]["adversarial"]).read_bytes()


class PerVideoBound(BoundModel):
    """A bound model run on one video at a time (see `PerVideo`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([super(PerVideoBound, self).forward(x[i : i + 1]) for i in range(x.shape[0])])


class PerVideoView(ModelView):
    def bind(self, plan):
        return PerVideoBound(self, plan)


# -- the workers yield the CPU to the attack ---------------------------------------------------------


def _priority_in_worker(monkeypatch: pytest.MonkeyPatch, niceness: str | None) -> tuple[int, int]:
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from vidattack.pipeline.engine import background_priority

    if niceness is not None:
        monkeypatch.setenv("VIDATTACK_WORKER_NICENESS", niceness)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with ThreadPoolExecutor(1, initializer=background_priority) as pool:
        theirs = pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    return mine, theirs


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="per-thread priority is Linux's")
def test_engine_workers_run_at_a_lower_cpu_priority_than_the_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidattack.pipeline.engine import BACKGROUND_NICENESS

    mine, theirs = _priority_in_worker(monkeypatch, None)
    assert theirs == min(19, mine + BACKGROUND_NICENESS)
    assert _priority_in_worker(monkeypatch, "0")[1] == mine  # the comparison setting leaves it alone
