"""Render `benchmarks/results/hf-models.jsonl` (written by `hf_models.py`) as Markdown tables.

Run: python benchmarks/hf_models_table.py [--rows benchmarks/results/hf-models.jsonl] [--out FILE.md]
Without --out the tables go to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import load_rows

ROWS = Path(__file__).resolve().parent / "results" / "hf-models.jsonl"
STAGES = ("decode", "attack", "encode", "verify", "total")


def render(rows: dict[str, dict[str, Any]]) -> str:
    """Three tables: perturb stages and peak RSS, ours vs torchattacks, ONNX vs torch throughput."""
    out: list[str] = []
    perturb = [r for k, r in rows.items() if k.startswith("perturb:")]
    if perturb:
        out += [
            "`vidattack perturb`, PGD-Linf 5 steps, eps 4/255, one bundled example, "
            "randomly initialised full-size models",
            "",
            "| model | "
            + " | ".join(f"{s} s" for s in STAGES)
            + " | process wall s | process CPU s | peak RSS MiB | threads | load (1 min) |",
            "|---" * (len(STAGES) + 6) + "|",
        ]
        for r in perturb:
            stages = " | ".join(f"{r['stages_s'].get(s, 0):.1f}" for s in STAGES)
            out.append(
                f"| {r['key'].split(':', 1)[1]} | {stages} | {r['wall_s']:.1f} | {r.get('cpu_s', '-')} "
                f"| {r['peak_rss_mib']:.0f} | {r.get('threads', 2)} | {r.get('load_1min', '-')} |"
            )
        out.append("")
    single = [r for k, r in rows.items() if k.startswith("ratio:") and "repeat" not in r]
    if single:
        out += [
            "Same job, same bound model and input, one process: ours (`pgd-linf`, 5 steps, clean label and "
            "8-bit judging included) vs torchattacks' PGD (5 steps + the label and judging forwards); "
            "one run each, wall clock",
            "",
            "| model | ours s | torchattacks s | ratio ours/torchattacks | threads | load (1 min) |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['key'].split(':')[1]} | {r['ours_s']:.1f} | {r['torchattacks_s']:.1f} | {r['ratio']:.2f} "
            f"| {r['threads']} | {r.get('load_1min', '-')} |"
            for r in single
        ]
        out.append("")
    repeated = [r for r in rows.values() if r["key"].startswith("ratio:") and "repeat" in r]
    if repeated:
        groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in repeated:
            groups.setdefault((r["model"], r["threads"]), []).append(r)
        out += [
            "The same pair repeated in one process, alternating which goes first; times are one thread's "
            "CPU seconds (with one thread) or wall seconds, median and range over the repeats",
            "",
            "| model | threads | timed by | repeats | ours s | torchattacks s | ratio median | ratio range |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (model, threads), rs in groups.items():
            cpu = rs[0]["timed_by"] == "cpu"
            ours = statistics.median(r["ours_cpu_s" if cpu else "ours_s"] for r in rs)
            ta = statistics.median(r["torchattacks_cpu_s" if cpu else "torchattacks_s"] for r in rs)
            ratios = [r["ratio"] for r in rs]
            out.append(
                f"| {model} | {threads} | {rs[0]['timed_by']} | {len(rs)} | {ours:.1f} | {ta:.1f} | "
                f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"
            )
        out.append("")
    qps = [r for k, r in rows.items() if k.startswith("onnx-qps:")]
    if qps:
        out += [
            "Queries (videos classified) per second through the model's view, no gradients",
            "",
            "| model | batch | onnxruntime q/s | torch q/s | ratio ort/torch | threads |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['key'].split(':')[1]} | {r['batch']} | {r['onnxruntime_qps']:.2f} | {r['torch_qps']:.2f} | "
            f"{r['ratio']:.2f} | {r['threads']} |"
            for r in qps
        ]
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, default=ROWS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    text = render(load_rows(args.rows))
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
