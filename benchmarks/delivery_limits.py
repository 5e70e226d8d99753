"""Why some clips resist a delivery-aware 4/255 attack after H.264 crf 23 (issue #17's target).

    python benchmarks/delivery_limits.py [--model tiny-c3d] [--clips flash_1,move_down_2,move_right_2]
        [--variants NAME,...] [--crf 23] [--threads 1]

`benchmarks/delivery_table.py` finds delivery-aware PGD-Linf at 4/255 fooling tiny-c3d on 14 of 19
example clips after a real h264 crf 23 encode (the issue asks for 90%). This script attacks the clips
that resist with variants of the delivery-aware loop and prints, for each, the clean class's
probability after the real encode (the attack's best iterate, judged on `roundtrip` at `--crf`) and
on the lossless 8-bit result. Every variant runs the same loop: sign steps on the cross-entropy of
`DeliveryModel(bound, h264:crf=CRF)` (real encode forward, BPDA gradient through the exact colour path
and a Gaussian low-pass, see `vidattack.delivery.simulate`), projected into the Linf ball, keeping the
iterate whose delivered loss was highest (each forward IS a real encode, so this is the delivered
video's true loss). Variants:

- `base`: 20 steps of 1/255, sigma 2;   `steps60`: 60 steps;   `alpha2`: steps of 2/255 (40 steps);
- `sigma0`: straight-through gradient (no low-pass);   `sigma3`: a wider low-pass;
- `margin`: the margin loss max_{k != y} log p_k - log p_y instead of cross-entropy;
- `low4`: the perturbation held constant on 4x4 pixel blocks (x264's smallest transform: a block
  offset lands on one DC coefficient rather than spreading over sixteen);
- `static`: one perturbation frame repeated over time (motion compensation copies it forward);
- `eps8clip4`: the 8/255 attack (which fools every clip after crf 23), its perturbation then clipped
  to 4/255: whether the strong solution, cut to the budget, still carries through the codec.

Reading (tiny-c3d, flash_1 and move_down_2): every variant leaves the clean class above 0.94 after
the encode, and several do not even fool the lossless file, while 8/255 reaches 0.00. The codec's
quantization removes a +-4 level pattern that the model needs a larger amplitude for, on these clips.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidattack.delivery import DeliveryModel, parse_robust_to  # noqa: E402
from vidattack.delivery.encode import roundtrip  # noqa: E402
from vidattack.models import load_model  # noqa: E402
from vidattack.models.view import sampled_frames  # noqa: E402
from vidattack.video import load_video  # noqa: E402

BASE: dict[str, Any] = {
    "eps": 4,
    "alpha": 1.0,
    "steps": 20,
    "sigma": 2.0,
    "loss": "ce",
    "block": 1,
    "static": False,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "steps60": {"steps": 60},
    "alpha2": {"alpha": 2.0, "steps": 40},
    "sigma0": {"sigma": 0.0},
    "sigma3": {"sigma": 3.0},
    "margin": {"loss": "margin"},
    "low4": {"block": 4},
    "static": {"static": True},
    "eps8clip4": {"eps": 8, "alpha": 1.8, "clip": 4},
}


def attack(
    bound: Any, x: torch.Tensor, label: int, fps: float, crf: int, cfg: dict[str, Any]
) -> torch.Tensor:
    """The best delivered iterate of the variant `cfg`, `(1, T, C, H, W)` in [0, 1]."""
    model = DeliveryModel(bound, parse_robust_to(f"h264:crf={crf}"), fps=fps, sigma=cfg["sigma"])
    eps, step = cfg["eps"] / 255, cfg["alpha"] / 255
    n, t, c, h, w = x.shape
    b = cfg["block"]
    delta = torch.zeros(n, 1 if cfg["static"] else t, c, h // b, w // b)
    best, best_loss = x, -float("inf")
    for i in range(cfg["steps"] + 1):
        delta.requires_grad_(True)
        d = delta if b == 1 else F.interpolate(delta.flatten(0, 1), scale_factor=b, mode="nearest")
        adv = (x + d.reshape(n, -1, c, h, w).expand_as(x)).clamp(0, 1)
        log_p = model(adv)[0]
        if cfg["loss"] == "ce":
            loss = -log_p[label]
        else:
            others = log_p.clone()
            others[label] = -float("inf")
            loss = others.max() - log_p[label]
        if loss.item() > best_loss:
            best, best_loss = adv.detach().clone(), loss.item()
        if i == cfg["steps"]:
            break
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
    if "clip" in cfg:
        best = x + (best - x).clamp(-cfg["clip"] / 255, cfg["clip"] / 255)
    return best


def p_clean(bound: Any, adv: torch.Tensor, label: int, fps: float, crf: int) -> tuple[float, float]:
    """The clean class's probability after the real encode at `crf`, and on the lossless 8-bit video."""
    frames = adv.mul(255).round().to(torch.uint8)[0].permute(0, 2, 3, 1)
    coded = roundtrip(frames, parse_robust_to(f"h264:crf={crf}"), fps, crf=crf)
    with torch.no_grad():
        delivered = bound(coded.permute(0, 3, 1, 2)[None].float() / 255).exp()[0, label]
        lossless = bound(frames.permute(0, 3, 1, 2)[None].float() / 255).exp()[0, label]
    return float(delivered), float(lossless)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny-c3d")
    ap.add_argument("--clips", default="flash_1,move_down_2,move_right_2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    view = load_model(args.model)
    print(f"{args.model}, delivery-aware PGD-Linf, judged after h264 crf {args.crf}: p(clean class)")
    print("| clip | variant | after encode | lossless |")
    print("|---|---|---|---|")
    for clip in args.clips.split(","):
        video = load_video(ROOT / "examples" / f"{clip}.mp4")
        plan = view.plan(video.num_frames)
        bound = view.bind(plan)
        x = sampled_frames(video.frames, plan)
        label = view.labels.index(re.sub(r"_\d+$", "", clip))
        for name in args.variants.split(","):
            cfg = {**BASE, **VARIANTS[name]}
            torch.manual_seed(0)
            adv = attack(bound, x, label, float(video.fps), args.crf, cfg)
            delivered, lossless = p_clean(bound, adv, label, float(video.fps), args.crf)
            print(f"| {clip} | {name} | {delivered:.3f} | {lossless:.3f} |", flush=True)


if __name__ == "__main__":
    main()
