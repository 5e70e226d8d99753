"""Numerical agreement with IBM ART on a tiny model, deterministic settings (no random start).

ART's video attacks want `(N, F, H, W, C)` arrays (its flickering attack builds offsets of shape
`(1, F, 1, 1, C)`, and `FrameSaliencyAttack(frame_index=1)` says frames are axis 1); our attacks take
`(N, T, C, H, W)` tensors. The conversion is explicit (`to_art` / `from_art`), ART sees a wrapper that
permutes back before calling our model view, and a test pins which axis is time.

Our model view returns log-probabilities; ART treats them as logits: its softmax of them is the
probabilities again and its cross-entropy of them is -log p_y, so both sides optimize the same function.
Comparisons are on the float output of `run()`, before our 8-bit quantization.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from vidattack.attacks import AttackContext, get_attack
from vidattack.attacks.base import Attack
from vidattack.attacks.flicker import Flicker
from vidattack.criteria import make_criterion
from vidattack.models.view import BoundModel, ModelView, Preprocess

art = pytest.importorskip("art")

from art.attacks.evasion import (  # noqa: E402
    FrameSaliencyAttack,
    OverTheAirFlickeringPyTorch,
    ProjectedGradientDescent,
)
from art.estimators.classification import PyTorchClassifier  # noqa: E402

T, H, W, K = 8, 24, 24, 5


def to_art(x: Tensor) -> np.ndarray:
    """`(N, T, C, H, W)` tensor -> ART's `(N, F, H, W, C)` float32 array."""
    return x.permute(0, 1, 3, 4, 2).contiguous().numpy().astype(np.float32)


def from_art(a: np.ndarray) -> Tensor:
    """ART's `(N, F, H, W, C)` array -> `(N, T, C, H, W)` tensor."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 1, 4, 2, 3)


class FromNFHWC(nn.Module):
    """What ART calls: `(N, F, H, W, C)` in, our bound model's log-probabilities `(N, K)` out."""

    def __init__(self, bound: BoundModel) -> None:
        super().__init__()
        self.bound = bound

    def forward(self, x: Tensor) -> Tensor:
        return self.bound(x.permute(0, 1, 4, 2, 3))  # (N, T, C, H, W)


class OnlyFrame(nn.Module):
    """A 3D-CNN-shaped net `(B, C, T, H, W)` whose output depends on one frame only."""

    def __init__(self, frame: int) -> None:
        super().__init__()
        self.frame = frame
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, K)

    def forward(self, x: Tensor) -> Tensor:
        f = torch.relu(self.conv(x[:, :, self.frame]))
        return self.head(f.mean(dim=(2, 3)))


def toy_3d() -> nn.Module:
    """A small 3D CNN `(B, 3, T, H, W)` -> logits, without global pooling so it is easy to fool."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(3, 4, 3, stride=(1, 4, 4), padding=1),  # (B, 4, T, H/4, W/4)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * T * (H // 4) * (W // 4), K),
    ).eval()


def bind(net: nn.Module) -> BoundModel:
    view = ModelView(net.eval(), Preprocess(clip_len=T), [f"c{i}" for i in range(K)], "toy")
    return view.bind(view.plan(T))


def art_classifier(bound: BoundModel) -> PyTorchClassifier:
    return PyTorchClassifier(
        model=FromNFHWC(bound),
        loss=nn.CrossEntropyLoss(),
        input_shape=(T, H, W, 3),
        nb_classes=K,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def clip_on_grid(seed: int, lo: int = 0, hi: int = 256) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, (1, T, 3, H, W), generator=g).float() / 255.0


def run_float(attack: Attack, model: nn.Module, x: Tensor, target: int | None = None) -> tuple[Tensor, dict]:
    """The attack's own loop output (before quantization), and its info."""
    with torch.no_grad():
        clean = model(x).argmax(dim=1)
    criterion = make_criterion(clean, target)
    ctx = AttackContext(generator=torch.Generator().manual_seed(0), frame_ids=tuple(range(T)), num_frames=T)
    threat = attack.threat_model(model, x, criterion, ctx)
    return attack.run(model, x, criterion, threat, ctx).detach(), ctx.info


def onehot(label: int) -> np.ndarray:
    y = np.zeros((1, K), dtype=np.float32)
    y[0, label] = 1.0
    return y


def test_layout_conversion_keeps_time_on_axis_1() -> None:
    x = clip_on_grid(1)
    a = to_art(x)
    assert a.shape == (1, T, H, W, 3)
    assert torch.equal(torch.from_numpy(a[0, 3]), x[0, 3].permute(1, 2, 0))
    assert torch.equal(from_art(a), x)


def test_masked_pgd_matches_art_pgd_with_mask() -> None:
    torch.set_num_threads(1)
    bound = bind(toy_3d())
    x = clip_on_grid(2)
    attack = get_attack("masked-pgd", ratio=0.1, top=5, left=9, steps=20)
    ours, info = run_float(attack, bound, x)
    ph, pw = info["region"]["height"], info["region"]["width"]
    assert (ph, pw) == (7, 7)  # floor(24 * sqrt(0.1))

    mask = np.zeros((T, H, W, 3), dtype=np.float32)  # (F, H, W, C), broadcast over the batch by ART
    mask[:, 5 : 5 + ph, 9 : 9 + pw, :] = 1.0
    pgd = ProjectedGradientDescent(
        art_classifier(bound), eps=1.0, eps_step=0.02, max_iter=20, num_random_init=0, verbose=False
    )
    theirs = from_art(pgd.generate(to_art(x), mask=mask))
    assert (ours - x).abs().max() > 0.1
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["iterative_saliency", "iterative_saliency_refresh", "one_shot"])
def test_frame_saliency_matches_art(mode: str) -> None:
    torch.set_num_threads(1)
    bound = bind(toy_3d())
    x = clip_on_grid(3)
    eps, alpha, steps = 2 / 255, 0.4 / 255, 10
    ours_mode = {"iterative_saliency": "iterative", "iterative_saliency_refresh": "iterative-refresh"}.get(
        mode, "one-shot"
    )
    attack = get_attack("frame-saliency", mode=ours_mode, eps=eps, alpha=alpha, steps=steps)
    ours, info = run_float(attack, bound, x)

    classifier = art_classifier(bound)
    inner = ProjectedGradientDescent(
        classifier, eps=eps, eps_step=alpha, max_iter=steps, num_random_init=0, verbose=False
    )
    fsa = FrameSaliencyAttack(classifier, inner, method=mode, frame_index=1, verbose=False)
    theirs = from_art(fsa.generate(to_art(x)))

    changed = ((theirs - x).abs().amax(dim=(2, 3, 4)) > 0)[0].nonzero().flatten().tolist()
    if mode != "one_shot":
        # a partial attack: some frames flip it, not all are needed
        assert 0 < len(changed) < T
        assert sorted(info["frame_order"][0]) == changed
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("targeted", [False, True])
def test_flicker_matches_art(targeted: bool) -> None:
    torch.set_num_threads(1)
    bound = bind(toy_3d())
    # mid-grey content: ART's defaults (30 steps of 0.01) cannot reach 0 or 1, where the two differ
    x = clip_on_grid(4, lo=90, hi=166)
    target = None
    with torch.no_grad():
        clean = int(bound(x).argmax())
    if targeted:
        target = (clean + 1) % K
    attack = Flicker(alpha=0.01, steps=30)  # ART's class defaults
    with torch.no_grad():
        criterion = make_criterion(torch.tensor([clean]), target)
    ctx = AttackContext(generator=torch.Generator().manual_seed(0), frame_ids=tuple(range(T)), num_frames=T)
    last, _, _ = attack.optimize(bound, x, criterion, ctx)
    ours = (x + last).clamp(0, 1)

    flicker = OverTheAirFlickeringPyTorch(art_classifier(bound), targeted=targeted, verbose=False)
    y = onehot(clean if target is None else target)
    theirs = from_art(flicker.generate(to_art(x), y))
    assert theirs.min() > 0 and theirs.max() < 1  # the precondition of exact agreement
    assert (theirs - x).abs().max() > 0.01
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_art_flicker_and_ours_flicker_frame_3_of_a_frame_3_model() -> None:
    """Time is axis 1 for ART: on a net that only sees frame 3, only frame 3 flickers (no smoothing)."""
    torch.set_num_threads(1)
    torch.manual_seed(5)
    bound = bind(OnlyFrame(3))
    x = clip_on_grid(6, lo=90, hi=166)
    with torch.no_grad():
        clean = int(bound(x).argmax())
    flicker = OverTheAirFlickeringPyTorch(art_classifier(bound), beta_0=0.0, max_iter=10, verbose=False)
    theirs = from_art(flicker.generate(to_art(x), onehot(clean)))
    moved = (theirs - x).abs().amax(dim=(0, 2, 3, 4))  # (T,)
    assert moved[3] > 0
    assert torch.all(moved[torch.arange(T) != 3] == 0)

    attack = Flicker(beta_0=0.0, alpha=0.01, steps=10)
    criterion = make_criterion(torch.tensor([clean]), None)
    ctx = AttackContext(generator=torch.Generator().manual_seed(0), frame_ids=tuple(range(T)), num_frames=T)
    last, _, _ = attack.optimize(bound, x, criterion, ctx)
    torch.testing.assert_close((x + last).clamp(0, 1), theirs, atol=1e-5, rtol=0)
