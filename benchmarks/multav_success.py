"""Success rate of the MultAV family and its additive counterparts at the paper's defaults.

For every example clip (`examples/*.mp4`) and every bundled model, runs each attack at its defaults
(untargeted, seed 0) on the frames the model samples and prints a markdown table: success rate over the
clips the model classifies correctly, and the mean Linf, ratio_max (max of max(x'/x, x/x'); inf when a
black pixel changes, for additive attacks) and MAP (mean absolute perturbation) of the 8-bit result, in
[0, 1] pixel units, plus the mean attack time per clip.

Run: python benchmarks/multav_success.py [--models tiny-c3d,tiny-lrcn] [--attacks multav-linf,...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from vidattack.attacks import get_attack
from vidattack.models.bundled import load_bundled
from vidattack.models.view import sampled_frames
from vidattack.video import load_video

ATTACKS = [
    "multav-linf",
    "multav-l2",
    "multav-roa",
    "multav-af",
    "multav-spa",
    "roa",
    "af",
    "spa",
    "pgd-linf",
    "pgd-l2",
]
ROOT = Path(__file__).resolve().parents[1]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny-c3d,tiny-lrcn", help="comma-separated bundled model names")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack names")
    ap.add_argument("--examples", default=str(ROOT / "examples"), help="folder of *.mp4 clips")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    clips = sorted(Path(args.examples).glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no *.mp4 in {args.examples}")
    videos = {p.name: load_video(p) for p in clips}
    print(f"{len(clips)} clips from {args.examples}; defaults, untargeted, seed 0\n")
    print("| model | attack | success | mean Linf | mean ratio_max | mean MAP | s/clip |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for model_name in args.models.split(","):
        view = load_bundled(model_name)
        inputs = []
        for name, video in videos.items():
            plan = view.plan(video.num_frames)
            bound = view.bind(plan)
            x = sampled_frames(video.frames, plan)
            true = (
                view.labels.index(name.rsplit("_", 1)[0]) if name.rsplit("_", 1)[0] in view.labels else None
            )
            with torch.no_grad():
                pred = int(bound(x).argmax(1)[0])
            if true is None or pred == true:  # success rates over correctly classified clips only
                inputs.append((bound, x, plan))
        for attack_name in args.attacks.split(","):
            attack = get_attack(attack_name)
            wins, linf, ratio_max, mapv, secs = 0, [], [], [], []
            for bound, x, _plan in inputs:
                t0 = time.perf_counter()
                r = attack(bound, x)
                secs.append(time.perf_counter() - t0)
                wins += int(r.success[0])
                linf.append(r.norms["linf"][0])
                ratio_max.append(r.norms["ratio_max"][0])
                mapv.append(r.norms["map"][0])
            rate = f"{wins}/{len(inputs)} ({100 * wins / max(len(inputs), 1):.0f}%)"
            rmax = mean(ratio_max)
            rtext = "inf" if math.isinf(rmax) else f"{rmax:.3f}"
            print(
                f"| {model_name} | {attack_name} | {rate} | {mean(linf) * 255:.1f}/255 | {rtext} | "
                f"{mean(mapv) * 255:.2f}/255 | {mean(secs):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
