"""Run `vidattack perturb` on every input of the hostile corpus (tests/hostile.py), one process each.

Prints one row per input: what it is, what a correct tool does with it, the exit code, how many lines
went to stderr, whether a traceback appeared, whether partial outputs were left, whether the input
changed, the process's peak memory and its time; then the totals for the note.

    python benchmarks/hostile_corpus.py [--long] [--no-huge] [--threads 1] [--steps 2]
    python benchmarks/hostile_corpus.py --scenarios [--tree /path/to/another/checkout] [--only TEXT]

`--scenarios` runs round two (benchmarks/hostile_scenarios.py): whole commands against damaged
results files, hostile data sets, signals at each stage, bad checkpoints and options.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hostile import PEAK_LAUNCHER, Case, digest, make_corpus  # noqa: E402


def run_one(case: Case, out: Path, args: argparse.Namespace) -> dict[str, object]:
    before = digest(case.path)
    cmd: list[str | bytes] = [
        sys.executable,
        "-c",
        PEAK_LAUNCHER,
        sys.executable,
        "-m",
        "vidattack",
        "perturb",
    ]
    cmd += [os.fsencode(case.path), "-o", str(out)]
    cmd += ["--steps", str(args.steps), "--threads", str(args.threads), "--format", "jsonl", "-q"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        _, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    text = stderr.decode(errors="replace")
    text, _, rss = text.rpartition("@maxrss ")
    err = text.strip().splitlines()
    files = sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []
    reports = [f for f in files if f.endswith(".report.json")]
    return {
        "kind": case.kind,
        "expect": case.expect,
        "exit": proc.returncode,
        "stderr_lines": len(err),
        "first_error": err[0][:100] if err else "",
        "traceback": "Traceback" in text,
        "partial": bool(files) and not reports,
        "processed": bool(reports),
        "input_changed": before != digest(case.path),
        "peak_mb": int(rss) / 1024 if rss.strip().isdigit() else None,
        "seconds": seconds,
    }


def verdict(row: dict[str, object]) -> str:
    clean_refusal = row["exit"] == 1 and row["stderr_lines"] == 1 and not row["traceback"]
    clean_refusal = clean_refusal and not row["partial"]
    if row["expect"] == "ok":
        return "good" if row["processed"] and row["exit"] == 0 else "BAD"
    if row["expect"] == "refused":
        return "good" if clean_refusal else "BAD"
    return "good" if (row["processed"] and row["exit"] == 0) or clean_refusal else "BAD"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true", help="add 2000 frames of 1280x720")
    ap.add_argument(
        "--no-huge",
        action="store_true",
        help="leave out 4 frames of 8192x8192 (until decoding is bounded it needs 11 GB: not on a shared machine)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument(
        "--scenarios",
        action="store_true",
        help="run round two instead (issue #27: results files, data sets, signals, checkpoints, options)",
    )
    ap.add_argument("--only", help="with --scenarios: only the cases whose name holds this text")
    ap.add_argument(
        "--tree", type=Path, default=ROOT, help="with --scenarios: the checkout to run (the before)"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vidattack-hostile-"))
    if args.scenarios:
        from hostile_scenarios import run_scenarios

        try:
            rows = run_scenarios(args.tree.resolve(), tmp, args.only)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        good = sum(r["good"] for r in rows)
        print(
            f"\nscenarios {len(rows)}, as the issue asks {good}/{len(rows)}, time {sum(r['seconds'] for r in rows):.0f} s"
        )
        return
    try:
        cases = make_corpus(tmp / "corpus", huge=not args.no_huge, long=args.long)
        rows = []
        for i, case in enumerate(cases):
            row = run_one(case, tmp / "out" / str(i), args)
            row["verdict"] = verdict(row)
            rows.append(row)
            print(
                f"{row['verdict']:4} {row['kind'][:34]:34} expect={row['expect']:13} exit={row['exit']} "
                f"stderr={row['stderr_lines']} tb={int(bool(row['traceback']))} partial={int(bool(row['partial']))} "
                f"changed={int(bool(row['input_changed']))} peak={row['peak_mb'] or 0:.0f}MB "
                f"{row['seconds']:.1f}s  {row['first_error']}",
                flush=True,
            )
        refused = sum(1 for r in rows if not r["processed"])
        print(
            f"\ntried {len(rows)}, processed {len(rows) - refused}, refused {refused}, "
            f"as expected {sum(r['verdict'] == 'good' for r in rows)}/{len(rows)}, "
            f"tracebacks {sum(bool(r['traceback']) for r in rows)}, "
            f"inputs changed {sum(bool(r['input_changed']) for r in rows)}, "
            f"peak memory max {max((r['peak_mb'] or 0) for r in rows):.0f} MB, "
            f"time {sum(float(r['seconds']) for r in rows):.0f} s"  # type: ignore[arg-type]
        )
    finally:
        for p in (tmp / "corpus").rglob("*"):
            if p.is_file() and not p.is_symlink():
                p.chmod(0o644)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
