"""Render `benchmarks/results/hf-models.jsonl` (written by `hf_models.py`) as Markdown tables.

Run: python benchmarks/hf_models_table.py [--rows benchmarks/results/hf-models.jsonl] [--out FILE.md]
Without --out the tables go to stdout.
"""

from __future__ import annotations

import argparse
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
            "| model | " + " | ".join(f"{s} s" for s in STAGES) + " | process wall s | peak RSS MiB | CPUs |",
            "|---" * (len(STAGES) + 4) + "|",
        ]
        for r in perturb:
            stages = " | ".join(f"{r['stages_s'].get(s, 0):.1f}" for s in STAGES)
            out.append(
                f"| {r['key'].split(':', 1)[1]} | {stages} | {r['wall_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['cpus']} |"
            )
        out.append("")
    ratio = [r for k, r in rows.items() if k.startswith("ratio:")]
    if ratio:
        out += [
            "Same job, same bound model and input, one process: ours (`pgd-linf`, 5 steps, clean label and "
            "8-bit judging included) vs torchattacks' PGD (5 steps + the label and judging forwards)",
            "",
            "| model | ours s | torchattacks s | ratio ours/torchattacks | threads |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {r['key'].split(':', 1)[1]} | {r['ours_s']:.1f} | {r['torchattacks_s']:.1f} | {r['ratio']:.2f} | {r['threads']} |"
            for r in ratio
        ]
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
