"""Where a PGD step's time goes beyond a bare forward+backward (#25), in CPU time of one thread.

Interleaved, on one clip (a generated 16 x 112 x 112 synthetic clip) against one model, each measured
with `time.thread_time` at one torch thread (every op then runs in this thread, so the figure is the
work done, steady on a loaded machine):

- `bare`: forward, `nll_loss`, `autograd.grad` to the input (the reference);
- `bare_objective`: the same with the criterion's objective instead of `nll_loss`;
- `loss_and_grad`: the attacks' gradient hook through the counting model;
- `step`: the hook plus the Linf step as `ascend` makes it once the box is needed (sign, add, clamp to
  the box; the first steps from the clean video, which cannot leave the ball, clamp to [0, 1] only);
- `ascend`: the shared loop itself, per step (history, progress, box, the first step's copy).

Much of the spread between runs is first-touch page faults: glibc returns freed video-sized tensors to
the kernel (or, for `posix_memalign`'s 64-byte-aligned requests, cannot reuse a freed chunk of the same
size), so a new tensor of the same size often starts on fresh pages, at about 1.8 us per 4 KiB on a
2-core VM; how many a step meets changes from run to run (0 to 1900 per step on tiny-c3d).

With `--model weighted-sum`, a stand-in network whose forward and backward are one pass each over the
video, `ascend` less `loss_and_grad` is the loop's own work per step, with the model's cost out of it.

    python benchmarks/step_overhead.py --model r3d_18 --repeats 4 --precision fp32
    python benchmarks/step_overhead.py --model weighted-sum --repeats 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


class WeightedSum(torch.nn.Module):
    """Two classes scored by a fixed weighted sum of the video: a forward and a backward of one pass each,
    so what a loop does beyond them stands out (a stand-in, not a classifier)."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(0)) - 0.5)
        self.plan = argparse.Namespace(frame_ids=tuple(range(x.shape[1])), num_frames=x.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.w).flatten(1).sum(1)  # (N,)
        return torch.log_softmax(torch.stack([s, -s], 1), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--model",
        default="tiny-c3d",
        help="a bundled name, r3d_18 / mc3_18 (random weights), or weighted-sum (the loop's own work)",
    )
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from vidattack.attacks.base import loss_and_grad
    from vidattack.attacks.context import AttackContext
    from vidattack.attacks.counting import CountingModel
    from vidattack.attacks.loops import ascend
    from vidattack.criteria import Misclassification
    from vidattack.data.synthetic import make_clip
    from vidattack.models import load_model
    from vidattack.models.view import sampled_frames
    from vidattack.precision import optimising
    from vidattack.threat import LinfBall

    frames = make_clip(0, seed=1234)
    if args.model == "weighted-sum":
        x = frames.permute(0, 3, 1, 2).float().div(255).unsqueeze(0)  # (1, T, C, H, W)
        model: torch.nn.Module = WeightedSum(x)
        plan = model.plan
    else:
        if args.model in ("r3d_18", "mc3_18"):
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from throughput import random_weights

            view = load_model(random_weights(args.model))
        else:
            view = load_model(args.model)
        plan = view.plan(frames.shape[0])
        model = view.bind(plan)
        x = sampled_frames(frames, plan)
    with torch.no_grad():
        labels = model(x).argmax(1)
    crit, threat, steps, alpha = Misclassification(labels), LinfBall(eps=4 / 255), args.steps, 1 / 255
    counting, box, x_step = CountingModel(model), threat.box(x), x.clone()

    def bare() -> None:
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.nll_loss(model(xr).float(), labels), xr)

    def bare_objective() -> None:
        xr = x.detach().requires_grad_(True)
        torch.autograd.grad(crit.objective(model(xr).float()).sum(), xr)

    def hook() -> None:
        loss_and_grad(counting, x, crit.objective)

    def step() -> None:
        _, _, g = loss_and_grad(counting, x_step, crit.objective)
        x_step.add_(g.sign_(), alpha=alpha).clamp_(*box)

    def loop() -> None:
        ctx = AttackContext(generator=torch.Generator(), frame_ids=plan.frame_ids, num_frames=plan.num_frames)
        ascend(CountingModel(model), x, crit, threat, ctx, start=x, size=alpha, steps=steps)

    fns = {
        "bare": bare,
        "bare_objective": bare_objective,
        "loss_and_grad": hook,
        "step": step,
        "ascend": loop,
    }
    times: dict[str, list[float]] = {k: [] for k in fns}
    with optimising(args.precision, "cpu"):  # type: ignore[arg-type]
        for fn in fns.values():
            fn()
        for _ in range(args.repeats):
            for k, fn in fns.items():
                start = time.thread_time()
                fn()
                times[k].append((time.thread_time() - start) / (steps if k == "ascend" else 1))
    ref, ref_min = statistics.median(times["bare"]), min(times["bare"])
    print(f"{args.model}, {args.precision}, {args.repeats} interleaved repeats, CPU time of one thread")
    for k, v in times.items():
        med = statistics.median(v)
        print(f"{k:15s} {med * 1e3:9.2f} ms  x{med / ref:.3f} (fastest runs x{min(v) / ref_min:.3f})")


if __name__ == "__main__":
    main()
