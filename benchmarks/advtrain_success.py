"""Success of the adversarial-training paper's video attacks (its Table 4) at their defaults, as an eval.

A thin wrapper over `vidattack.eval.run_eval`, so these numbers come from the code path of `vidattack
eval`. Each attack spec is one configuration; per bundled model the run is the commands

    vidattack eval examples/labels.csv --model tiny-c3d --attack frame-saliency --set mode=one-shot \\
        --seed 0 --threads 1 --out runs/advtrain_success/tiny-c3d
    vidattack eval examples/labels.csv --model tiny-c3d --attack masked-pgd,frame-border,flicker \\
        --seed 0 --threads 1 --out runs/advtrain_success/tiny-c3d
    ...

(one eval folder collects them all) and prints a markdown table from the summary rows, per model and
attack:

- accuracy under attack over all clips (the paper's Table 4 metric; the label is the clip's class);
- success rate over the clips the model classifies correctly (the prediction changes);
- mean number of frames that changed at all, of the video's frames;
- mean Linf and MAP (mean absolute perturbation) of the written and decoded video in /255 units;
- seconds per clip (attack, lossless write and decode).

Run: python benchmarks/advtrain_success.py [--models tiny-c3d,tiny-lrcn] [--attacks ...] [--limit N]
Attack specs are `name` or `name:key=value;key=value` (e.g. `frame-saliency:mode=iterative-refresh`).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from vidattack.data.datasets import load_dataset
from vidattack.eval import Config, RunOptions, build_grid, run_eval
from vidattack.models import load_model
from vidattack.models.view import ModelView

ATTACKS = [
    "frame-saliency:mode=one-shot",
    "frame-saliency:mode=iterative",
    "masked-pgd",
    "frame-border",
    "flicker",
]
ROOT = Path(__file__).resolve().parents[1]


def spec_config(spec: str, view: ModelView) -> Config:
    """`name` or `name:key=value;key=value` -> its eval configuration (values parsed like `--set`)."""
    name, _, rest = spec.partition(":")
    settings = dict(kv.split("=", 1) for kv in rest.split(";") if kv)
    (config,) = build_grid([name], view, settings=settings, seed=0)
    return config


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="tiny-c3d,tiny-lrcn", help="comma-separated model names")
    ap.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated attack specs")
    ap.add_argument("--dataset", default=str(ROOT / "examples" / "labels.csv"), help="an eval DATASET")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N clips (0: all)")
    ap.add_argument("--out", default=None, help="eval folders go to OUT/MODEL (default: a temporary one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="advtrain-success-") as tmp:
        out = Path(args.out or tmp)
        print(f"{args.dataset}; defaults, untargeted, seed 0, device {args.device}; eval folders in {out}\n")
        print(
            "| model | attack | clean acc | acc under attack | success (of correct) | frames perturbed "
            "| mean Linf | mean MAP | s/clip |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for model_name in args.models.split(","):
            view = load_model(model_name, device=args.device)
            data = load_dataset(args.dataset, view.labels)
            if args.limit:
                data = replace(data, items=data.items[: args.limit])
            specs = args.attacks.split(",")
            configs = [spec_config(spec, view) for spec in specs]
            run = run_eval(
                data,
                configs,
                view,
                RunOptions(out_dir=out / model_name, device=args.device, threads=args.threads),
            )
            rows = {r.key: r for r in run.rows}
            frames = data.items[0].load_video().num_frames
            for spec, cfg in zip(specs, configs, strict=True):
                r = rows[cfg.key]
                correct = round((r.clean_accuracy or 0) * r.videos)
                wins = round((r.attack_success_rate or 0) * correct)
                print(
                    f"| {model_name} | {spec} | {correct}/{r.videos} | {100 * (r.robust_accuracy or 0):.0f}% "
                    f"| {wins}/{correct} ({100 * wins / max(correct, 1):.0f}%) "
                    f"| {r.mean_frames_perturbed or 0:.1f}/{frames} | {r.mean_linf or 0:.1f}/255 "
                    f"| {r.mean_map or 0:.2f}/255 | {r.seconds_per_video or 0:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
