"""The sparse l2,1 attack against the bundled CNN+LSTM, in the shape of Wei et al.'s Table 1, as an eval.

    python benchmarks/sparse_table.py [--model tiny-lrcn] [--dataset examples/labels.csv] [--limit N]
                                      [--prune off|on|both] [--frames 16,8,4,1] [--set lam=30]
                                      [--out runs/sparse_table/MODEL] [--table-only] [--queries]

A thin wrapper over `vidattack.eval.run_eval`, so these numbers come from the code path of `vidattack
eval`. Each row is one configuration, the command

    vidattack eval examples/labels.csv --model tiny-lrcn --attack sparse \\
        --set frames=K --set norm=NORM --set prune=PRUNE --seed 0 --threads 1 --out OUT

For K = 16, 8, 4, 1 perturbed frames (the first K of the 16 sampled; K = 16 is "all", where the l2,1
norm chooses the frames), for the l2,1 penalty and the paper's l2 comparison, without and with the final
pruning of weak frames (`prune`, off by default in the attack; reported in separate rows), it prints:

- fooling rate over the clips the model classifies correctly when clean (the eval's success rate);
- sparsity S: share of the 16 sampled frames left exactly clean in the 8-bit result (the attack's
  `info["sparsity"]`; the paper's S counts the masked-out frames too: 1 - K/T at least);
- MAP: mean absolute perturbation over the 16 sampled frames and their pixels of the 8-bit result, in
  grey levels (/255; the attack's `info["map"]`), averaged over the fooled clips (the paper's P) and
  over all clips;
- iterations and attack seconds per clip;
- propagation (fooled): for models with per-frame predictions, the share of the frames left clean
  whose own prediction flipped (`info["propagation_rate"]`), averaged over the fooled clips.

Those attack-side measures come from the eval records' `info` field (`RunOptions(info=...)`).

Changes from the hand-rolled script: DATASET (`--dataset`, default `examples/labels.csv`, labels from
the manifest) replaces `--examples DIR` and its label-from-file-name rule; `--out` (an eval folder,
resumed by `run_eval` from its `results.jsonl`) replaces `--results FILE.jsonl`; videos are attacked
with the eval's per-video seed and written and decoded losslessly as `vidattack eval` does; the
propagation column is new. `--table-only` prints the table from `--out` without attacking.
`--queries` also checks, on the first clip, that the propagation mode's reported queries equal an
independent count of the forward passes made through the model (outside the eval).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vidattack.attacks import get_attack  # noqa: E402
from vidattack.data.datasets import load_dataset  # noqa: E402
from vidattack.eval import Config, RunOptions, build_grid, read_records, run_eval  # noqa: E402
from vidattack.eval.records import latest  # noqa: E402
from vidattack.models import load_model  # noqa: E402
from vidattack.models.view import ModelView, sampled_frames  # noqa: E402
from vidattack.video import load_video  # noqa: E402

FRAMES = ("16", "8", "4", "1")
NORMS = ("l21", "l2")
INFO = ("sparsity", "map", "iterations", "propagation_rate")


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    """The row of one configuration from its eval records (counted: the clips the model got right)."""
    counted = [r for r in records if r["clean"] == r["label"]]
    fooled = [r for r in counted if r["success"]]

    def info(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> float:
        return mean([scale * r["info"][key] for r in rows if r.get("info", {}).get(key) is not None])

    return {
        "n": len(counted),
        "fooled": len(fooled),
        "rate": len(fooled) / len(counted) if counted else float("nan"),
        "sparsity": info(fooled, "sparsity"),
        "sparsity_all": info(counted, "sparsity"),
        "map": info(fooled, "map", 255.0),
        "map_all": info(counted, "map", 255.0),
        "iterations": info(counted, "iterations"),
        "seconds": mean([r["attack_seconds"] for r in counted]),
        "propagation": info(fooled, "propagation_rate"),
    }


def print_table(configs: list[Config], records: list[dict[str, Any]], clips: set[str], t: int) -> None:
    print(
        "| K frames perturbed | norm | prune | fooling rate | sparsity S (fooled) | MAP /255 (fooled) | "
        "S (all) | MAP /255 (all) | iters | s/attack | propagation (fooled) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        got = [r for r in records if r["key"] == cfg.key and r["video"] in clips and r.get("status") == "ok"]
        if not got:
            continue
        s = summarize(got)
        frames, norm, prune = cfg.settings["frames"], cfg.settings["norm"], cfg.settings["prune"]
        k = f"{frames} of {t}" + (" (all)" if int(frames) == t else "")
        partial = "" if len(got) == len(clips) else f" [{len(got)}/{len(clips)} clips]"
        prop = "-" if s["propagation"] != s["propagation"] else f"{100 * s['propagation']:.1f}%"
        print(
            f"| {k}{partial} | {norm} | {'on' if prune == 'true' else 'off'} | "
            f"{100 * s['rate']:.1f}% ({s['fooled']}/{s['n']}) | {100 * s['sparsity']:.1f}% | {s['map']:.3f} | "
            f"{100 * s['sparsity_all']:.1f}% | {s['map_all']:.3f} | {s['iterations']:.0f} | {s['seconds']:.1f} "
            f"| {prop} |"
        )


def check_queries(view: ModelView, video: torch.Tensor, extra: dict[str, str]) -> None:
    """Propagation mode: reported queries against an independent count of forward passes."""
    from counting import VideoCounter

    from vidattack.attacks.params import parse_value

    specs = {spec.name: spec for spec in get_attack("sparse").params()}
    plan = view.plan(int(video.shape[0]))
    counter = VideoCounter(view.bind(plan))
    x = sampled_frames(video, plan)
    params = {k: parse_value(specs[k], v) for k, v in extra.items()}
    result = get_attack("sparse", propagate=4, **params)(counter, x)
    print(
        f"\npropagate=4 on the first clip: {result.info['iterations']} iterations, "
        f"shortened video {result.info['propagation']['shortened_video']}, reported queries {result.queries}, "
        f"independent count of videos forwarded {counter.seen} (of which the template's own clean and "
        "final forwards: the difference)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="tiny-lrcn")
    parser.add_argument("--dataset", default=str(ROOT / "examples" / "labels.csv"), help="an eval DATASET")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N clips (0 = all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prune", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--out", type=Path, default=None, help="eval folder (default runs/sparse_table/MODEL)"
    )
    parser.add_argument("--frames", default=",".join(FRAMES), help="the K values, comma-separated")
    parser.add_argument("--table-only", action="store_true", help="print the table from --out")
    parser.add_argument("--queries", action="store_true", help="also check propagation-mode query counts")
    parser.add_argument("--set", action="append", default=[], help="extra attack params k=v (e.g. lam=30)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    extra = dict(item.split("=", 1) for item in args.set)

    view = load_model(args.model)
    data = load_dataset(args.dataset, view.labels)
    if args.limit:
        data = dataclasses.replace(data, items=data.items[: args.limit])
    if not len(data):
        print(f"no clips in {args.dataset}", file=sys.stderr)
        return 1
    out = args.out or ROOT / "runs" / "sparse_table" / args.model
    prunes = {"off": ["false"], "on": ["true"], "both": ["false", "true"]}[args.prune]
    configs = [
        cfg
        for prune in prunes
        for k in args.frames.split(",")
        for norm in NORMS
        for cfg in build_grid(
            ["sparse"], view, settings={**extra, "frames": k, "norm": norm, "prune": prune}, seed=0
        )
    ]
    if not args.table_only:
        run_eval(data, configs, view, RunOptions(out_dir=out, threads=args.threads, info=INFO))
    print(f"model {view.name}, {len(data)} clips, eval folder {out}, params {extra or 'defaults'}\n")
    print("## Fooling rate, sparsity and MAP versus perturbed frames (first K frames; paper Table 1)\n")
    print_table(configs, latest(read_records(out / "results.jsonl")), {item.id for item in data}, 16)
    if args.queries:
        first = data.items[0]
        assert first.path is not None
        check_queries(view, load_video(first.path).frames, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
