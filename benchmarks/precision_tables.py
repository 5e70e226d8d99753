"""Render the precision benchmarks' records as markdown (#25): speed (`bench_pgd.py --out`) and
fidelity (`precision_fidelity.py --out`), side by side per model.

    python benchmarks/precision_tables.py benchmarks/results/precision-speed.jsonl \\
        benchmarks/results/precision-fidelity.jsonl > benchmarks/results/precision.md

Speed: per model, the median time of the whole PGD job (clean label, attack, 8-bit quantization,
judging) for each contender, its ratio to torchattacks, and our attack loop's time per step against a
bare forward+backward of the same bound model in each precision. With one torch thread the table uses
the thread's CPU time (the work done, steady under load); otherwise the wall clock. Fidelity: per
model and attack, clips fooled out of those attacked and the mean margin of the judged results
(`max_{k != clean} log p_k - log p_clean`, positive when fooled) in fp32 and bf16, and the difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

JOBS = ("vidattack-fp32", "vidattack-bf16", "torchattacks", "art")


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def speed_table(rows: list[dict[str, Any]]) -> list[str]:
    """One row per model, from that model's latest run (a model measured alone later, such as the
    full-size VideoMAE-B on a quiet machine, joins the others); ratios are taken within its run."""
    latest: dict[str, str] = {}
    for r in rows:
        latest[r["model"]] = max(latest.get(r["model"], r["run"]), r["run"])
    by_model: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["run"] == latest[r["model"]]:
            by_model[r["model"]][r["contender"]] = r
            by_run[r["run"]].append(r)
    out = [f"- {_run_line(run, rs)}" for run, rs in sorted(by_run.items())]
    out += [
        "",
        "| model | run | " + " | ".join(JOBS) + " | torchattacks / bf16 | step/bare fp32 | step/bare bf16 |",
        "| --- | --- |" + " --- |" * (len(JOBS) + 3),
    ]
    for model, c in by_model.items():
        out.append(_speed_row(model, c))
    return out


def _time_key(r: dict[str, Any]) -> str:
    # one torch thread on a CPU: the thread's CPU time (steady under load); otherwise the wall clock
    return "cpu_median_s" if r["threads"] == 1 and r["device"] == "cpu" else "median_s"


def _run_line(run: str, rows: list[dict[str, Any]]) -> str:
    first = rows[0]
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    models = ", ".join(dict.fromkeys(r["model"] for r in rows))
    cpu = _time_key(first) == "cpu_median_s"
    return (
        f"Run {run} ({models}): torch {first['torch']}, {first['threads']} thread(s) on {first['device']}, "
        f"CPU bf16 flags {', '.join(first['cpu_bf16_flags']) or 'none'}; input {first['input']}, PGD-Linf "
        f"{first['steps']} steps, eps 4/255, alpha 1/255; load average {min(loads):.1f}-{max(loads):.1f}; "
        f"medians of {len(first['times_s'])} interleaved repeats, "
        f"{'CPU time of the one torch thread' if cpu else 'wall clock'}."
    )


def _speed_row(model: str, c: dict[str, dict[str, Any]]) -> str:
    key = _time_key(next(iter(c.values())))
    cells = [f"{c[j][key]:.3f} s" if j in c else "-" for j in JOBS]
    ta, bf16 = c.get("torchattacks"), c.get("vidattack-bf16")
    speedup = f"{ta[key] / bf16[key]:.2f}x" if ta and bf16 else "-"
    per_step = []
    for p in ("fp32", "bf16"):
        loop, bare = c.get(f"loop-{p}"), c.get(f"bare-{p}")
        per_step.append(f"{loop[key] / loop['steps'] / bare[key]:.3f}" if loop and bare else "-")
    run = next(iter(c.values()))["run"]
    return f"| {model} | {run} | " + " | ".join(cells) + f" | {speedup} | " + " | ".join(per_step) + " |"


def fidelity_table(rows: list[dict[str, Any]]) -> list[str]:
    cells: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cells[(r["model"], r["attack"])][r["precision"]].append(r)
    loads = [r["load"] for r in rows]
    out = [
        f"{len(rows)} attacks, one torch thread, load average {min(loads):.1f}-{max(loads):.1f}; each at its "
        "defaults, untargeted, seed 0; success and margin judged in float32 on the 8-bit quantized result.",
        "",
        "| model | attack | fooled fp32 | fooled bf16 | difference | mean margin fp32 | mean margin bf16 |"
        " CPU s/clip fp32 | CPU s/clip bf16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (model, attack), by_p in cells.items():
        a, b = by_p.get("fp32", []), by_p.get("bf16", [])
        sa, sb = sum(r["success"] for r in a), sum(r["success"] for r in b)

        def mean(rs: list[dict[str, Any]], k: str) -> str:
            return f"{statistics.mean(r[k] for r in rs):.3f}" if rs else "-"

        out.append(
            f"| {model} | {attack} | {sa}/{len(a)} | {sb}/{len(b)} | {sb - sa:+d} | {mean(a, 'margin')} | "
            f"{mean(b, 'margin')} | {mean(a, 'cpu_seconds')} | {mean(b, 'cpu_seconds')} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("speed", type=Path, help="bench_pgd.py --out records")
    ap.add_argument("fidelity", type=Path, help="precision_fidelity.py --out records")
    args = ap.parse_args()
    print("# Mixed precision: speed and fidelity (#25)\n")
    print("## Speed: the same PGD job, and a step against a bare forward+backward\n")
    print("\n".join(speed_table(read(args.speed))))
    print("\n## Fidelity: success and margin on the 19 examples, fp32 vs bf16\n")
    print("\n".join(fidelity_table(read(args.fidelity))))


if __name__ == "__main__":
    main()
