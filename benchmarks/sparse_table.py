"""The sparse l2,1 attack against the bundled CNN+LSTM, in the shape of Wei et al.'s Table 1.

    python benchmarks/sparse_table.py [--model tiny-lrcn] [--examples examples] [--limit N] [--prune off|on|both]

For K = 16, 8, 4, 1 perturbed frames (the first K of the 16 sampled; K = 16 is "all", where the l2,1
norm chooses the frames), for the l2,1 penalty and the paper's l2 comparison, without and with the final
pruning of weak frames (`prune`, off by default in the attack; reported in separate rows), it prints:

- fooling rate over the clips the model classifies correctly when clean;
- sparsity S: share of the 16 frames left exactly clean in the 8-bit result (the paper's S counts the
  masked-out frames too: 1 - K/T at least);
- MAP: mean absolute perturbation over all frames and pixels of the 8-bit result, in grey levels (/255),
  averaged over the fooled clips (the paper's P) and over all clips;
- iterations and seconds per attack.

Every attack is one row of `benchmarks/results/sparse-<model>.jsonl`, written as it finishes: a rerun skips
the rows already there with the same parameters, so an interrupted run resumes. `--table-only` prints the
table from the file without attacking. `--queries` also checks, on the first clip, that the propagation
mode's reported queries equal an independent count of the forward passes made through the model.

The label of a clip is its file name without the trailing `_<number>` when that is one of the model's
labels (the bundled examples are named so); otherwise the clean prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from counting import VideoCounter  # noqa: E402

from vidattack.attacks import get_attack  # noqa: E402
from vidattack.attacks.params import parse_value  # noqa: E402
from vidattack.models import load_model  # noqa: E402
from vidattack.models.view import ModelView, sampled_frames  # noqa: E402
from vidattack.video import load_video  # noqa: E402

FRAMES = ("16", "8", "4", "1")
NORMS = ("l21", "l2")


def label_of(path: Path, view: ModelView) -> int | None:
    name = re.sub(r"_\d+$", "", path.stem.split(".")[0])
    return view.labels.index(name) if name in view.labels else None


def attack_clip(
    view: ModelView, video: torch.Tensor, label: int | None, params: dict[str, Any]
) -> dict[str, Any]:
    plan = view.plan(int(video.shape[0]))
    model = view.bind(plan)
    x = sampled_frames(video, plan)
    with torch.no_grad():
        clean = int(model(x).argmax())
    truth = clean if label is None else label
    start = time.perf_counter()
    result = get_attack("sparse", **params)(model, x, labels=torch.tensor([truth]))
    info = result.info
    return {
        "correct": clean == truth,
        "fooled": bool(result.success[0]),
        "map": info["map"] * 255,
        "map_per_frame": [round(v * 255, 4) for v in info["map_per_frame"]],
        "sparsity": info["sparsity"],
        "frames_perturbed": info["frames_perturbed"],
        "frames_pruned": info["frames_pruned"],
        "iterations": info["iterations"],
        "lam_final": info["lam_final"],
        "queries": result.queries,
        "seconds": time.perf_counter() - start,
    }


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    counted = [r for r in rows if r["correct"]]
    fooled = [r for r in counted if r["fooled"]]
    return {
        "n": len(counted),
        "fooled": len(fooled),
        "rate": len(fooled) / len(counted) if counted else float("nan"),
        "sparsity": mean([r["sparsity"] for r in fooled]),
        "sparsity_all": mean([r["sparsity"] for r in counted]),
        "map": mean([r["map"] for r in fooled]),
        "map_all": mean([r["map"] for r in counted]),
        "iterations": mean([r["iterations"] for r in counted]),
        "seconds": mean([r["seconds"] for r in counted]),
    }


def key_of(clip: str, params: dict[str, Any]) -> str:
    return json.dumps({"clip": clip, **params}, sort_keys=True)


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["key"]] = row
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def print_table(
    settings: list[dict[str, Any]], rows: dict[str, dict[str, Any]], clips: list[str], t: int
) -> None:
    print(
        "| K frames perturbed | norm | prune | fooling rate | sparsity S (fooled) | MAP /255 (fooled) | "
        "S (all) | MAP /255 (all) | iters | s/attack |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for params in settings:
        got = [rows[key_of(c, params)] for c in clips if key_of(c, params) in rows]
        if not got:
            continue
        s = summarize(got)
        k = f"{params['frames']} of {t}" + (" (all)" if int(params["frames"]) == t else "")
        partial = "" if len(got) == len(clips) else f" [{len(got)}/{len(clips)} clips]"
        print(
            f"| {k}{partial} | {params['norm']} | {'on' if params['prune'] else 'off'} | "
            f"{100 * s['rate']:.1f}% ({s['fooled']}/{s['n']}) | {100 * s['sparsity']:.1f}% | {s['map']:.3f} | "
            f"{100 * s['sparsity_all']:.1f}% | {s['map_all']:.3f} | {s['iterations']:.0f} | {s['seconds']:.1f} |"
        )


def check_queries(view: ModelView, video: torch.Tensor, extra: dict[str, Any]) -> None:
    """Propagation mode: reported queries against an independent count of forward passes."""
    plan = view.plan(int(video.shape[0]))
    counter = VideoCounter(view.bind(plan))
    x = sampled_frames(video, plan)
    result = get_attack("sparse", propagate=4, **extra)(counter, x)
    print(
        f"\npropagate=4 on the first clip: {result.info['iterations']} iterations, "
        f"shortened video {result.info['propagation']['shortened_video']}, reported queries {result.queries}, "
        f"independent count of videos forwarded {counter.seen} (of which the template's own clean and "
        "final forwards: the difference)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-lrcn")
    parser.add_argument("--examples", type=Path, default=ROOT / "examples")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N clips (0 = all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prune", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--results", type=Path, default=None, help="jsonl file (default benchmarks/results/...)"
    )
    parser.add_argument("--frames", default=",".join(FRAMES), help="the K values, comma-separated")
    parser.add_argument("--table-only", action="store_true", help="print the table from the results file")
    parser.add_argument("--queries", action="store_true", help="also check propagation-mode query counts")
    parser.add_argument("--set", action="append", default=[], help="extra attack params k=v (e.g. lam=30)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = {spec.name: spec for spec in get_attack("sparse").params()}
    extra: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        extra[key] = parse_value(specs[key], value)

    view = load_model(args.model)
    paths = sorted(args.examples.glob("*.mp4"))
    if args.limit:
        paths = paths[: args.limit]
    if not paths:
        print(f"no clips in {args.examples}", file=sys.stderr)
        return 1
    results = args.results or ROOT / "benchmarks" / "results" / f"sparse-{args.model}.jsonl"
    rows = load_rows(results)
    prunes = {"off": [False], "on": [True], "both": [False, True]}[args.prune]
    settings = [
        {"frames": k, "norm": norm, "prune": prune, **extra}
        for prune in prunes
        for k in args.frames.split(",")
        for norm in NORMS
    ]
    clips = [p.name for p in paths]
    videos: dict[str, torch.Tensor] = {}
    t_total = 16
    if not args.table_only:
        for params in settings:
            for path in paths:
                key = key_of(path.name, params)
                if key in rows:
                    continue
                if path.name not in videos:
                    videos[path.name] = load_video(path).frames
                row = {"key": key, "clip": path.name, "params": params}
                row.update(attack_clip(view, videos[path.name], label_of(path, view), params))
                append_row(results, row)
                rows[key] = row
                print(
                    f"{path.name} {params}: fooled {row['fooled']} S {row['sparsity']:.2f} "
                    f"MAP {row['map']:.3f} it {row['iterations']} {row['seconds']:.1f}s",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"model {view.name}, {len(paths)} clips, results {results.relative_to(ROOT) if results.is_relative_to(ROOT) else results}, "
        f"params {extra or 'defaults'}\n"
    )
    print("## Fooling rate, sparsity and MAP versus perturbed frames (first K frames; paper Table 1)\n")
    print_table(settings, rows, clips, t_total)
    if args.queries:
        check_queries(view, load_video(paths[0]).frames, extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
