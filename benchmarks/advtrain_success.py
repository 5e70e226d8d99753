"""Success of the adversarial-training paper's video attacks (its Table 4) at their defaults.

For every example clip (`examples/*.mp4`) and every bundled model, runs frame saliency (one-shot and
iterative), masked PGD, frame border and flickering at their defaults (untargeted, seed 0) on the frames
the model samples, and prints a markdown table with, per model and attack:

- accuracy under attack over all clips (the paper's Table 4 metric; the label is the clip's file name);
- success rate over the clips the model classifies correctly (the prediction changes);
- mean number of sampled frames that changed at all (out of the T the model samples);
- mean Linf and MAP (mean absolute perturbation) of the 8-bit result in /255 units, on those clips;
- mean attack time per clip.

Run: python benchmarks/advtrain_success.py [--models tiny-c3d,tiny-lrcn] [--attacks ...] [--limit N]
Attack specs are `name` or `name:key=value;key=value` (e.g. `frame-saliency:mode=iterative-refresh`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from vidattack.attacks import Attack, get_attack
from vidattack.attacks.registry import get_attack_from_text
from vidattack.models.bundled import load_bundled
from vidattack.models.view import sampled_frames
from vidattack.video import load_video

ATTACKS = [
    "frame-saliency:mode=one-shot",
    "frame-saliency:mode=iterative",
    "masked-pgd",
    "frame-border",
    "flicker",
]
ROOT = Path(__file__).resolve().parents[1]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def parse_spec(spec: str) -> Attack:
    """`name` or `name:key=value;key=value` -> an attack instance (values parsed like `--set`)."""
    name, _, rest = spec.partition(":")
    settings = dict(kv.split("=", 1) for kv in rest.split(";") if kv)
    return get_attack_from_text(name, settings) if settings else get_attack(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-c3d,tiny-lrcn", help="comma-separated bundled model names")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack specs")
    ap.add_argument("--examples", default=str(ROOT / "examples"), help="folder of *.mp4 clips")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N clips (0: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    clips = sorted(Path(args.examples).glob("*.mp4"))
    if args.limit:
        clips = clips[: args.limit]
    if not clips:
        raise SystemExit(f"no *.mp4 in {args.examples}")
    videos = {p.name: load_video(p) for p in clips}
    print(f"{len(clips)} clips from {args.examples}; defaults, untargeted, seed 0, device {device}\n")
    print(
        "| model | attack | clean acc | acc under attack | success (of correct) | frames perturbed "
        "| mean Linf | mean MAP | s/clip |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for model_name in args.models.split(","):
        view = load_bundled(model_name).to(device)
        inputs = []
        for name, video in videos.items():
            plan = view.plan(video.num_frames)
            bound = view.bind(plan)
            x = sampled_frames(video.frames, plan, device)
            label = name.rsplit("_", 1)[0]
            true = view.labels.index(label) if label in view.labels else None
            with torch.no_grad():
                pred = int(bound(x).argmax(1)[0])
            inputs.append((bound, x, plan, true, pred == true))
        n_correct = sum(ok for *_, ok in inputs)
        clean_acc = f"{n_correct}/{len(inputs)}"
        for spec in args.attacks.split(","):
            attack = parse_spec(spec)
            wins, still_right, frames, linf, mapv, secs = 0, 0, [], [], [], []
            for bound, x, _plan, true, correct in inputs:
                t0 = time.perf_counter()
                r = attack(bound, x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                secs.append(time.perf_counter() - t0)
                still_right += int(true is not None and int(r.adversarial_labels[0]) == true)
                if not correct:
                    continue
                wins += int(r.success[0])
                # counted on the result itself, so every attack is measured the same way
                frames.append(float((r.adversarial != x).flatten(2).any(dim=2).sum()))
                linf.append(r.norms["linf"][0])
                mapv.append(r.norms["map"][0])
            rate = f"{wins}/{n_correct} ({100 * wins / max(n_correct, 1):.0f}%)"
            t = inputs[0][1].shape[1]
            print(
                f"| {model_name} | {spec} | {clean_acc} | {100 * still_right / len(inputs):.0f}% | {rate} | "
                f"{mean(frames):.1f}/{t} | {mean(linf) * 255:.1f}/255 | {mean(mapv) * 255:.2f}/255 | "
                f"{mean(secs):.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
