"""The same PGD job, side by side in one process: vidattack fp32 and bf16 against torchattacks and ART.

For each model (a bundled name; `r3d_18` / `mc3_18` with seeded random torchvision weights; or a
HuggingFace folder that `hf_models.py`'s builder makes from transformers' default config with random
weights: `videomae-b`, full size, 16 x 224 x 224, or `videomae-small112`, its small stand-in for quick
checks; nothing downloaded) on one clip (a generated 16 x 112 x 112 synthetic clip by default), PGD-Linf, eps 4/255,
alpha 1/255, `--steps` steps, no random start, the contenders run interleaved (drift on a shared machine
hits them alike) and each is timed for the whole job a user needs: the clean label, the attack, the
8-bit quantization inside the ball and the judging forward:

- `vidattack-fp32`, `vidattack-bf16`: one call of our attack (`precision=`), which does all of it;
- `torchattacks`: `torchattacks.PGD` plus a labelling and a judging forward (float32: its only mode);
- `art`: IBM ART's `ProjectedGradientDescent` on a `PyTorchClassifier`, plus the same two forwards.

And per gradient step: our attack loop (`ascend`, `--steps` steps) / steps against a bare forward and
backward of the same bound model (`nll_loss`, `autograd.grad` to the input), each in fp32 and in bf16.
Ratios are taken within one run, which survives load better than absolute times; the load average is
recorded with the numbers. Records go to `--out` (JSON lines, one per model and contender), rendered by
`benchmarks/precision_tables.py`.

    python benchmarks/bench_pgd.py --models tiny-c3d,r3d_18,mc3_18 --repeats 3 \\
        --out benchmarks/results/precision-speed.jsonl
    python benchmarks/bench_pgd.py --models videomae-b --repeats 3 --hf-cache /tmp/vidattack-hf \\
        --out benchmarks/results/precision-speed.jsonl

The HuggingFace models go through vidattack's folder loader, like any user's; ART's
`PyTorchClassifier` gets our bound model and the 5-D input `(T, C, H, W)` per video as its input shape.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RANDOM_ARCHS = ("r3d_18", "mc3_18", "r2plus1d_18")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread): with one torch thread every op runs in this thread,
    so its CPU time is the work done whatever else the machine runs (wall time is not, under load)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.thread_time() - c0


def load(name: str, device: torch.device, hf_cache: Path) -> object:
    from vidattack.models import load_model

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from hf_models import BUILDABLE, build

    if name in RANDOM_ARCHS:
        from throughput import random_weights

        return load_model(random_weights(name), device=device)
    if name in BUILDABLE:  # a randomly initialised HuggingFace folder, built once into the cache
        return load_model(str(build(name, hf_cache)), device=device)
    return load_model(name, device=device)


def contenders(view: object, frames: torch.Tensor, dev: torch.device, steps: int, peers: list[str]) -> dict:
    """name -> a zero-argument function doing that contender's whole job (or one step) once."""
    from vidattack.attacks import get_attack
    from vidattack.attacks.context import AttackContext
    from vidattack.attacks.counting import CountingModel
    from vidattack.attacks.loops import ascend
    from vidattack.criteria import Misclassification
    from vidattack.models.view import sampled_frames
    from vidattack.precision import optimising
    from vidattack.threat import LinfBall

    plan = view.plan(frames.shape[0])  # type: ignore[attr-defined]
    model = view.bind(plan)  # type: ignore[attr-defined]
    x = sampled_frames(frames, plan, dev)
    eps, alpha = 4 / 255, 1 / 255
    threat = LinfBall(eps=eps)
    with torch.no_grad():
        labels = model(x).argmax(1)
    crit = Misclassification(labels)
    ours = get_attack("pgd-linf", eps=eps, alpha=alpha, steps=steps)
    fns: dict[str, Callable[[], object]] = {}
    outputs: dict[str, Callable[[], torch.Tensor]] = {}

    def judged(adv_fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], torch.Tensor]:
        def job() -> torch.Tensor:  # what a peer's user adds: a labelling and a judging forward
            with torch.no_grad():
                y = model(x).argmax(1)
            adv = threat.quantize(adv_fn(y).detach(), x)
            with torch.no_grad():
                model(adv).argmax(1)
            return adv

        return job

    for p in ("fp32", "bf16"):
        outputs[f"vidattack-{p}"] = lambda p=p: ours(model, x, precision=p).adversarial

        def bare(p: str = p) -> None:
            with optimising(p, dev), torch.enable_grad():  # type: ignore[arg-type]
                xr = x.detach().requires_grad_(True)
                torch.autograd.grad(torch.nn.functional.nll_loss(model(xr).float(), labels), xr)

        def loop(p: str = p) -> None:
            ctx = AttackContext(
                generator=torch.Generator(device=dev), frame_ids=plan.frame_ids, num_frames=plan.num_frames
            )
            with optimising(p, dev):  # type: ignore[arg-type]
                ascend(CountingModel(model), x, crit, threat, ctx, start=x, size=alpha, steps=steps)

        fns[f"bare-{p}"], fns[f"loop-{p}"] = bare, loop
    if "torchattacks" in peers:
        import torchattacks

        ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
        outputs["torchattacks"] = judged(lambda y: ta(x, y))
    if "art" in peers:
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier

        # ART sees our log-probabilities as logits: its cross-entropy of them is -log p_y, the same loss
        clf = PyTorchClassifier(
            model, torch.nn.CrossEntropyLoss(), tuple(x.shape[1:]), model.num_classes,
            clip_values=(0.0, 1.0), device_type="gpu" if dev.type == "cuda" else "cpu",
        )  # fmt: skip
        pgd = ProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=alpha,
            max_iter=steps,
            num_random_init=0,
            batch_size=1,
            verbose=False,
        )

        def art_adv(y: torch.Tensor) -> torch.Tensor:
            adv = pgd.generate(x.cpu().numpy(), y=np.eye(model.num_classes)[y.cpu().numpy()])
            return torch.from_numpy(adv).to(dev)

        outputs["art"] = judged(art_adv)
    fns.update(outputs)
    return {"fns": fns, "outputs": outputs, "model": model, "x": x, "labels": labels}


def run_model(name: str, args: argparse.Namespace, dev: torch.device, frames: torch.Tensor) -> list[dict]:
    view = load(name, dev, args.hf_cache)
    c = contenders(view, frames, dev, args.steps, args.peers.split(","))
    fns = c["fns"]
    for fn in fns.values():  # warm-up: allocator, thread pools, oneDNN kernels
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for k, fn in fns.items():
            wall, used = timed(fn)
            times[k].append(wall)
            cpu[k].append(used)
    load_after = os.getloadavg()[0]
    model, x, labels = c["model"], c["x"], c["labels"]
    fooled = {}
    for k, fn in c["outputs"].items():
        adv = fn()
        with torch.no_grad():
            fooled[k] = bool((model(adv).argmax(1) != labels).all())
    rows = []
    for k, v in times.items():
        rows.append(
            {
                "model": name, "contender": k, "median_s": statistics.median(v), "min_s": min(v),
                "times_s": v, "cpu_median_s": statistics.median(cpu[k]), "cpu_s": cpu[k], "steps": args.steps, "input": list(x.shape), "threads": torch.get_num_threads(),
                "device": str(dev), "load_before": load_before, "load_after": load_after,
                "fooled": fooled.get(k),
            }
        )  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--models",
        default="tiny-c3d",
        help="comma-separated: bundled names, r3d_18, mc3_18, videomae-b (videomae-small112: a small stand-in)",
    )
    ap.add_argument(
        "--hf-cache", type=Path, default=Path("/tmp/vidattack-hf"), help="where HuggingFace models are built"
    )
    ap.add_argument("--video", default=None, help="video file (default: a generated 16-frame synthetic clip)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--peers", default="torchattacks,art", help="comma-separated: torchattacks, art")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0 = torch default); 1 makes CPU time meaningful",
    )
    ap.add_argument("--out", default=None, help="append JSON-line records here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from vidattack.pipeline import resolve_device
    from vidattack.precision import cpu_flags

    dev = resolve_device(args.device)
    if args.video:
        from vidattack.video import load_video

        frames = load_video(args.video).frames
    else:
        from vidattack.data.synthetic import make_clip

        frames = make_clip(0, seed=1234)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    for name in args.models.split(","):
        rows = run_model(name, args, dev, frames)
        for r in rows:
            r.update(run=stamp, cpu_bf16_flags=flags, torch=torch.__version__)
        if args.out:
            with open(args.out, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
        key = "cpu_median_s" if torch.get_num_threads() == 1 and dev.type == "cpu" else "median_s"
        med = {r["contender"]: r[key] for r in rows}
        print(f"## {name} ({rows[0]['input']}, {args.steps} steps, load {rows[0]['load_before']:.1f})")
        for r in rows:
            print(
                f"{r['contender']:16s} wall {r['median_s'] * 1e3:9.1f} ms (min {r['min_s'] * 1e3:.1f}), "
                f"CPU {r['cpu_median_s'] * 1e3:9.1f} ms, fooled {r['fooled']}"
            )
        print(f"ratios from {'CPU' if key.startswith('cpu') else 'wall'} times:")
        if "torchattacks" in med:
            print(f"torchattacks / vidattack-bf16: {med['torchattacks'] / med['vidattack-bf16']:.2f}x")
        for p in ("fp32", "bf16"):
            print(
                f"{p}: loop per step / bare fwd+bwd: {med[f'loop-{p}'] / args.steps / med[f'bare-{p}']:.3f}"
            )


if __name__ == "__main__":
    main()
