"""Success rate of the MultAV family and its additive counterparts at the paper's defaults, as an eval.

A thin wrapper over `vidattack.eval.run_eval`, so these numbers come from the code path of `vidattack
eval`. Per bundled model it is the command

    vidattack eval examples/labels.csv --model tiny-c3d --attack multav-linf,multav-l2,...,pgd-l2 \\
        --seed 0 --threads 1 --out runs/multav_success/tiny-c3d

(each attack at its defaults, untargeted) and prints a markdown table from its summary rows: success
rate over the clips the model classifies correctly, and the mean Linf, ratio_max (max of max(x'/x,
x/x'); inf when a black pixel changes, as additive attacks do) and MAP (mean absolute perturbation) of
the written and decoded adversarial video, plus seconds per clip (attack, lossless write and decode).

Run: python benchmarks/multav_success.py [--models tiny-c3d,tiny-lrcn] [--attacks multav-linf,...]
                                          [--out runs/multav_success]   (resumes when rerun)
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch

from vidattack.data.datasets import load_dataset
from vidattack.eval import RunOptions, build_grid, run_eval
from vidattack.models import load_model

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


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="tiny-c3d,tiny-lrcn", help="comma-separated model names")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack names")
    ap.add_argument("--dataset", default=str(ROOT / "examples" / "labels.csv"), help="an eval DATASET")
    ap.add_argument("--out", default=None, help="eval folders go to OUT/MODEL (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="multav-success-") as tmp:
        out = Path(args.out or tmp)
        print(f"{args.dataset}; defaults, untargeted, seed 0; eval folders in {out}\n")
        print("| model | attack | success | mean Linf | mean ratio_max | mean MAP | s/clip |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for model_name in args.models.split(","):
            view = load_model(model_name)
            data = load_dataset(args.dataset, view.labels)
            configs = build_grid(args.attacks.split(","), view, seed=0)
            run = run_eval(data, configs, view, RunOptions(out_dir=out / model_name, threads=args.threads))
            rows = {r.key: r for r in run.rows}
            for cfg in configs:  # in the order asked for
                r = rows[cfg.key]
                correct = round((r.clean_accuracy or 0) * r.videos)
                wins = round((r.attack_success_rate or 0) * correct)
                rmax = r.mean_ratio_max if r.mean_ratio_max is not None else math.nan
                rtext = "inf" if math.isinf(rmax) else f"{rmax:.3f}"
                print(
                    f"| {model_name} | {cfg.attack} | {wins}/{correct} ({100 * wins / max(correct, 1):.0f}%) "
                    f"| {r.mean_linf or 0:.1f}/255 | {rtext} | {r.mean_map or 0:.2f}/255 "
                    f"| {r.seconds_per_video or 0:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
