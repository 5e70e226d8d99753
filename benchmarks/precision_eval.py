"""The eval tables of the bundled robust models in both precisions (issue #25): does bf16 change what
`vidattack eval` reports as robust accuracy?

    python benchmarks/precision_eval.py            # measure what is missing, then write the table
    python benchmarks/precision_eval.py --table-only

For each bundled adversarially trained model (`tiny-c3d-at-pgd`, `tiny-c3d-at-multav`) and each dataset
(the 19 bundled examples through `examples/labels.csv`, and 50 synthetic clips `synthetic:5`), one
`vidattack eval` run per precision (`--precision fp32` and `--precision bf16`, the attack's steps only:
clean labels and judging stay fp32 either way) with PGD-Linf and MultAV-Linf at 4/255 and 8/255 (for
MultAV the additive budget e becomes the ratio bound 1+e), seed 0, one thread. Every summary row of
each run is appended to `benchmarks/results/precision-eval.jsonl` (a finished run is skipped on a
rerun); `--table-only` renders `benchmarks/results/precision-eval.md` from those records alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import append_row, load_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "precision-eval.jsonl"
TABLE = ROOT / "benchmarks" / "results" / "precision-eval.md"
MODELS = ("tiny-c3d-at-pgd", "tiny-c3d-at-multav")
DATASETS = {"examples": "examples/labels.csv", "synthetic:5": "synthetic:5"}
ATTACKS = "pgd-linf,multav-linf"
BUDGETS = "4/255,8/255"
PRECISIONS = ("fp32", "bf16")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def measure(rows: dict[str, Any]) -> None:
    for model in MODELS:
        for name, dataset in DATASETS.items():
            for precision in PRECISIONS:
                run = f"{model}/{name}/{precision}"
                if any(r.get("run") == run for r in rows.values()):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    argv = [sys.executable, "-m", "vidattack", "eval", dataset, "-m", model, "-a", ATTACKS]
                    argv += ["--eps", BUDGETS, "--precision", precision, "--seed", "0", "--threads", "1"]
                    argv += ["--out", tmp, "-q"]
                    done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(
                            f"{run}: eval failed ({done.returncode}): {done.stderr.strip()[-400:]}"
                        )
                    summary = json.loads((Path(tmp) / "summary.json").read_text())
                for r in summary["rows"]:
                    row = {"key": f"{run}/{r['attack']}/{r['budget']}", "run": run, "model": model,
                           "dataset": name, "precision": precision, **{k: r[k] for k in KEPT}}  # fmt: skip
                    append_row(RESULTS, row)
                    rows[row["key"]] = row
                print(f"{run}: {len(summary['rows'])} rows", flush=True)


KEPT = ("attack", "budget", "videos", "failed", "clean_accuracy", "robust_accuracy", "attack_success_rate")


def table(rows: dict[str, Any]) -> str:
    """Robust accuracy (%) per model, dataset, attack and budget: fp32, bf16 and the difference in clips."""
    out = [
        "# Robust accuracy of the bundled robust models, fp32 vs bf16 attacks (`vidattack eval`)",
        "",
        "Rows from benchmarks/results/precision-eval.jsonl (`python benchmarks/precision_eval.py`):",
        f"{ATTACKS} at {BUDGETS}, seed 0; `--precision` sets the attack's forward and backward passes",
        "only, so clean accuracy is the same both ways. Difference in clips = bf16 - fp32 robust clips.",
        "",
        "| model | dataset | videos | clean % | attack | budget | robust % fp32 | robust % bf16 | bf16 - fp32 (clips) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in MODELS:
        for name in DATASETS:
            for attack in ATTACKS.split(","):
                for budget in BUDGETS.split(","):
                    pair = [rows.get(f"{model}/{name}/{p}/{attack}/{budget}") for p in PRECISIONS]
                    if None in pair:
                        missing = f"{model}/{name}/{PRECISIONS[pair.index(None)]}/{attack}/{budget}"
                        raise SystemExit(f"{RESULTS.name}: no record for {missing}")
                    fp32, bf16 = pair
                    assert fp32 is not None and bf16 is not None
                    n = fp32["videos"] - fp32["failed"]
                    diff = round((bf16["robust_accuracy"] - fp32["robust_accuracy"]) * n)
                    out.append(
                        f"| {model} | {name} | {n} | {fp32['clean_accuracy'] * 100:.1f} | {attack} | {budget} "
                        f"| {fp32['robust_accuracy'] * 100:.1f} | {bf16['robust_accuracy'] * 100:.1f} | {diff:+d} |"
                    )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table-only", action="store_true", help="render the table from the records alone")
    args = ap.parse_args()
    rows = load_rows(RESULTS)
    if not args.table_only:
        measure(rows)
    text = table(rows)
    TABLE.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
