"""Our PGD-Linf against torchattacks' PGD, side by side in one process, same model, input and settings.

Prints, for the bundled model (or --model) on an example clip:
- the time ratio ours / torchattacks for the attack loop alone (both 5 forward+backward passes), and
  end to end (ours decides the clean label and judges the quantized result itself; a torchattacks user
  needs one forward for the labels and one to judge, which are added to its side);
- whether the adversarial outputs agree (both quantized to 8 bits inside the eps ball);
- the cost of one attack step relative to a bare forward+backward pass.

Run: python benchmarks/bench_pgd.py [--model tiny-c3d] [--video examples/move_left_1.mp4] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model spec (default: bundled tiny-c3d)")
    ap.add_argument("--video", default=None, help="video file (default: a generated 16-frame synthetic clip)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import torchattacks

    from vidattack.attacks import get_attack
    from vidattack.attacks.base import loss_and_grad
    from vidattack.attacks.counting import CountingModel
    from vidattack.attacks.loops import ascend
    from vidattack.criteria import Misclassification
    from vidattack.models import load_model
    from vidattack.models.view import sampled_frames
    from vidattack.pipeline import resolve_device
    from vidattack.threat import LinfBall

    dev = resolve_device(args.device)
    view = load_model(args.model, device=dev)
    if args.video:
        from vidattack.video import load_video

        frames = load_video(args.video).frames
    else:
        from vidattack.data.synthetic import make_clip

        frames = make_clip(0, seed=1234)
    plan = view.plan(frames.shape[0])
    model = view.bind(plan)
    x = sampled_frames(frames, plan, dev)
    eps, alpha, steps = 4 / 255, 1 / 255, args.steps

    ours = get_attack("pgd-linf", eps=eps, alpha=alpha, steps=steps)
    ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    with torch.no_grad():
        labels = model(x).argmax(1)
    threat = LinfBall(eps=eps)
    crit = Misclassification(labels)

    def ours_call() -> torch.Tensor:
        return ours(model, x).adversarial

    def ta_call() -> torch.Tensor:
        return ta(x, labels)

    def ours_loop() -> torch.Tensor:
        from vidattack.attacks.context import AttackContext

        ctx = AttackContext(
            generator=torch.Generator(device=dev), frame_ids=plan.frame_ids, num_frames=plan.num_frames
        )
        return ascend(CountingModel(model), x, crit, threat, ctx, start=x, size=alpha, steps=steps)

    def ta_end_to_end() -> torch.Tensor:
        with torch.no_grad():
            y = model(x).argmax(1)
        adv = ta(x, y)
        with torch.no_grad():
            model(adv).argmax(1)
        return adv

    def bare_fwd_bwd() -> None:
        xr = x.detach().requires_grad_(True)
        loss = torch.nn.functional.nll_loss(model(xr), labels)
        torch.autograd.grad(loss, xr)

    box = threat.box(x)  # computed once per attack by ascend
    x_step = x.clone()

    def one_step() -> None:
        # what ascend does per step after the first: gradient, sign step, clamp into the ball in place
        _, _, g = loss_and_grad(model, x_step, crit.objective)
        x_step.add_(g.sign_(), alpha=alpha).clamp_(*box)

    for fn in (ours_call, ta_call, bare_fwd_bwd, one_step):  # warm-up (allocator, thread pools)
        fn()
    # interleave the contenders so drift on a shared machine hits both alike
    t: dict[str, list[float]] = {
        k: [] for k in ("ours_call", "ours_loop", "ta_loop", "ta_e2e", "bare", "step")
    }
    for _ in range(args.repeats):
        t["ours_call"] += timed(ours_call, 1)
        t["ta_e2e"] += timed(ta_end_to_end, 1)
        t["ours_loop"] += timed(ours_loop, 1)
        t["ta_loop"] += timed(ta_call, 1)
        t["bare"] += timed(bare_fwd_bwd, 1)
        t["step"] += timed(one_step, 1)
    med = {k: statistics.median(v) for k, v in t.items()}
    low = {k: min(v) for k, v in t.items()}  # the least-disturbed run: steadier on a shared machine

    adv_ours = ours_call()
    adv_ta = threat.quantize(ta_call().detach(), x)
    diff = (adv_ours - adv_ta).abs().mul(255).round()
    agree = float((diff == 0).float().mean())

    print(
        f"model {view.name} on {dev}, input {tuple(x.shape)}, eps 4/255, alpha 1/255, {steps} steps, no random start"
    )
    print(f"torch threads {torch.get_num_threads()}, {args.repeats} interleaved repeats, medians")
    print("| measure | ours | torchattacks | ratio ours/ta |")
    print("| --- | --- | --- | --- |")
    print(
        f"| attack loop ({steps} fwd+bwd) | {med['ours_loop'] * 1e3:.1f} ms | {med['ta_loop'] * 1e3:.1f} ms | {med['ours_loop'] / med['ta_loop']:.3f} |"
    )
    print(
        f"| end to end (label + attack + judge) | {med['ours_call'] * 1e3:.1f} ms | {med['ta_e2e'] * 1e3:.1f} ms |"
        f" {med['ours_call'] / med['ta_e2e']:.3f} |"
    )
    print(
        f"| raw call (ours end to end vs ta attack only) | {med['ours_call'] * 1e3:.1f} ms | {med['ta_loop'] * 1e3:.1f} ms | {med['ours_call'] / med['ta_loop']:.3f} |"
    )
    print(
        f"one attack step / bare forward+backward: {med['step'] / med['bare']:.3f} ({med['step'] * 1e3:.2f} ms vs {med['bare'] * 1e3:.2f} ms); "
        f"fastest runs: {low['step'] / low['bare']:.3f}"
    )
    print(
        f"our attack loop per step / bare forward+backward: {med['ours_loop'] / steps / med['bare']:.3f}; "
        f"fastest runs: {low['ours_loop'] / steps / low['bare']:.3f}"
    )
    print(
        f"fastest runs, ours/ta: attack loop {low['ours_loop'] / low['ta_loop']:.3f}, "
        f"end to end {low['ours_call'] / low['ta_e2e']:.3f}"
    )
    print(
        f"outputs agree on {agree * 100:.4f}% of values after 8-bit quantization; max difference {int(diff.max())} level(s)"
    )


if __name__ == "__main__":
    main()
