"""Attacks on a deployed model: `vidattack serve tiny-c3d` on 127.0.0.1, attacked through the CLI.

    python benchmarks/remote_bench.py vbad   [--clips A,B,C] [--queries 1200]
    python benchmarks/remote_bench.py qps    [--clip NAME] [--queries 150] [--concurrency 1,4,8]
    python benchmarks/remote_bench.py hsja   [--clips A,B,C] [--queries 5000] [--checkpoints 1000,5000]
                                             [--remote-queries 300]
    python benchmarks/remote_bench.py resume [--clip NAME] [--queries 300] [--kill-after 100]
    python benchmarks/remote_bench.py table

Every measurement runs the real command (`python -m vidattack perturb ...`, seed 0, one thread) against
a real service (`python -m vidattack serve tiny-c3d --port 0 --threads 1`, a subprocess; its own
request count read from GET /stats) and is appended as one row to benchmarks/results/remote.jsonl
(resumable: a row already there is not measured again); `table` writes benchmarks/results/remote.md.

- vbad: untargeted V-BAD, remote (every frame sent as lossless RGB H.264) and in-process, same seed and
  budget: success, queries, the service's count, bytes per query.
- qps: the same V-BAD run cut at `--queries`, at each `--concurrency`: requests per second.
- hsja: label-only HopSkipJump (L2), in-process at `--queries` (the distortion at each checkpoint read
  from the one run's history: the attack never looks at its budget, so the first 1k queries of a 5k run
  are a 1k run), plus a remote run at `--remote-queries` against `--mode label` showing the same
  trajectory (hsja asks only 8-bit videos, which the lossless file carries exactly).
- resume: hsja against `--mode label`, killed with SIGKILL once the service has answered `--kill-after`
  requests, then run again with --resume: the service's count equals the query summary's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import append_row, load_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "remote.jsonl"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "vidattack"]


@contextmanager
def service(mode: str = "full") -> Iterator[str]:
    """`vidattack serve tiny-c3d` on a free port; yields its URL."""
    proc = subprocess.Popen(
        [*CLI, "serve", "tiny-c3d", "--port", "0", "--threads", "1", "--mode", mode],
        env=ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        url = next(w for w in line.split() if w.startswith("http://"))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served(url: str) -> int:
    stats = url.rsplit("/", 1)[0] + "/stats"
    with urllib.request.urlopen(stats, timeout=10) as r:
        return int(json.loads(r.read())["requests"])


def perturb(
    clip: str, attack: str, model: str, out: Path, sets: list[str], extra: list[str] = ()
) -> dict[str, Any]:
    """One perturb run; its record, report and (remote) query summary."""
    args = [*CLI, "perturb", str(ROOT / "examples" / f"{clip}.mp4"), "-a", attack, "--model", model]
    args += ["-o", str(out), "--seed", "0", "--threads", "1", "-f", "jsonl", "-q", "--outputs", "report"]
    for s in sets:
        args += ["--set", s]
    start = time.perf_counter()
    done = subprocess.run([*args, *extra], env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"perturb failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    report = json.loads((out / f"{clip}.report.json").read_text())
    summary_path = out / "queries.summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return {"report": report, "summary": summary, "seconds": round(seconds, 1)}


def vbad(args: argparse.Namespace, rows: dict[str, Any]) -> None:
    sets = [f"max_queries={args.queries}"]
    for clip in args.clips.split(","):
        for where in ("in-process", "remote"):
            key = f"vbad/{clip}/{where}/{args.queries}"
            if key in rows:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                if where == "remote":
                    with service() as url:
                        run = perturb(clip, "vbad", url, Path(tmp), sets)
                        count = served(url)
                else:
                    run, count = perturb(clip, "vbad", "tiny-c3d", Path(tmp), sets), None
            r = run["report"]
            row = {
                "key": key, "part": "vbad", "clip": clip, "where": where, "budget": args.queries,
                "success": r["success"], "success_after_encode": r["success_after_encode"],
                "queries": r["queries"], "adversarial": r["adversarial"]["label"], "seconds": run["seconds"],
                "served": count, "summary": run["summary"],
            }  # fmt: skip
            append_row(RESULTS, row)
            print(json.dumps({k: v for k, v in row.items() if k != "summary"}))


def qps(args: argparse.Namespace, rows: dict[str, Any]) -> None:
    for c in [int(v) for v in args.concurrency.split(",")]:
        key = f"qps/{args.clip}/{args.queries}/c{c}"
        if key in rows:
            continue
        with tempfile.TemporaryDirectory() as tmp, service() as url:
            run = perturb(
                args.clip, "vbad", url, Path(tmp), [f"max_queries={args.queries}"], ["--concurrency", str(c)]
            )
            count = served(url)
        s = run["summary"]
        row = {
            "key": key, "part": "qps", "clip": args.clip, "concurrency": c, "served": count,
            "requests": s["requests"], "requests_per_second": s["requests_per_second"],
            "bytes_per_query": s["bytes_per_query"], "seconds": run["seconds"], "summary": s,
        }  # fmt: skip
        append_row(RESULTS, row)
        print(json.dumps({k: v for k, v in row.items() if k != "summary"}))


def _at(history: list[dict[str, float]], budget: int, last: bool = False) -> float | None:
    """The distortion hsja returns at `budget` queries (the closest boundary point reached within them),
    or with `last`, that of the last one (what it returned before 2026-12-06's change)."""
    within = [h["distortion"] for h in history if h["queries"] <= budget]
    if not within:
        return None
    return within[-1] if last else min(within)


def hsja(args: argparse.Namespace, rows: dict[str, Any]) -> None:
    checkpoints = [int(v) for v in args.checkpoints.split(",")]
    for clip in args.clips.split(","):
        key = f"hsja/{clip}/in-process/{args.queries}/closest"
        if key not in rows:
            with tempfile.TemporaryDirectory() as tmp:
                run = perturb(clip, "hsja", "tiny-c3d", Path(tmp), [f"max_queries={args.queries}"])
            r = run["report"]
            row = {
                "key": key, "part": "hsja", "returns": "closest", "clip": clip, "where": "in-process",
                "budget": args.queries, "success": r["success"], "queries": r["queries"], "seconds": run["seconds"],
                "distortion_l2": {str(c): _at(r["history"], c) for c in checkpoints},
                "last_l2": {str(c): _at(r["history"], c, last=True) for c in checkpoints},
                "rms_255": {str(c): _rms(_at(r["history"], c), r) for c in checkpoints},
                "reported_l2": r["attack"]["info"]["distortion"], "file_l2": r["perturbation"]["l2"],
                "linf_255": round(r["perturbation"]["linf"] * 255, 2),
            }  # fmt: skip
            append_row(RESULTS, row)
            print(json.dumps(row))
        key = f"hsja/{clip}/remote/{args.remote_queries}"
        if args.remote_queries and key not in rows:
            sets = [f"max_queries={args.remote_queries}"]
            with tempfile.TemporaryDirectory() as tmp, service("label") as url:
                run = perturb(clip, "hsja", url, Path(tmp), sets, ["--label-only"])
                count = served(url)
            with tempfile.TemporaryDirectory() as tmp:
                local = perturb(clip, "hsja", "tiny-c3d", Path(tmp), sets)
            r, lr = run["report"], local["report"]
            row = {
                "key": key, "part": "hsja-remote", "clip": clip, "budget": args.remote_queries,
                "success": r["success"], "queries": r["queries"], "served": count,
                "distortion_remote": r["history"][-1]["distortion"],
                "distortion_in_process": lr["history"][-1]["distortion"],
                "same_trajectory": r["history"] == lr["history"], "seconds": run["seconds"], "summary": run["summary"],
            }  # fmt: skip
            append_row(RESULTS, row)
            print(json.dumps({k: v for k, v in row.items() if k != "summary"}))


def _rms(l2: float | None, report: dict[str, Any]) -> float | None:
    if l2 is None:
        return None
    v = report["video"]
    n = v["frames"] * v["height"] * v["width"] * 3
    return round(l2 / n**0.5 * 255, 3)


def resume(args: argparse.Namespace, rows: dict[str, Any]) -> None:
    key = f"resume/{args.clip}/{args.queries}/{args.kill_after}"
    if key in rows:
        return
    with tempfile.TemporaryDirectory() as tmp, service("label") as url:
        out = Path(tmp)
        argv = [*CLI, "perturb", str(ROOT / "examples" / f"{args.clip}.mp4"), "-a", "hsja", "--label-only"]
        argv += ["--model", url, "-o", str(out), "--seed", "0", "--threads", "1", "-f", "jsonl", "-q"]
        argv += ["--outputs", "report", "--set", f"max_queries={args.queries}"]
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while served(url) < args.kill_after and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = served(url)
        done = subprocess.run([*argv, "--resume"], env=ENV, capture_output=True, text=True)
        summary = json.loads((out / "queries.summary.json").read_text())
        report = json.loads((out / f"{args.clip}.report.json").read_text())
        row = {
            "key": key, "part": "resume", "clip": args.clip, "budget": args.queries, "exit": done.returncode,
            "served_at_kill": at_kill, "served_total": served(url), "summary_requests": summary["requests"],
            "requests_before_resume": summary["requests_before_resume"],
            "replayed_from_log": summary["replayed_from_log"], "report_queries": report["queries"],
        }  # fmt: skip
    append_row(RESULTS, row)
    print(json.dumps(row))


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" if values else "-"


def _vbad_lines(rows: dict[str, Any]) -> list[str]:
    """Per budget: each clip's in-process and remote run side by side, then the totals."""
    lines = ["## V-BAD untargeted, remote vs in-process (seed 0)", ""]
    for budget in sorted({r["budget"] for r in rows.values() if r["part"] == "vbad"}):
        pairs: dict[str, dict[str, Any]] = {}
        for r in rows.values():
            if r["part"] == "vbad" and r["budget"] == budget:
                pairs.setdefault(r["clip"], {})[r["where"]] = r
        lines += [
            f"Budget {budget} queries per clip:",
            "",
            "| clip | in-process success | in-process queries | remote success | remote queries | served | bytes/query |",
            "|---|---|---|---|---|---|---|",
        ]
        for clip in sorted(pairs):
            here, there = pairs[clip].get("in-process"), pairs[clip].get("remote")
            cells = [f"{here['success']} | {here['queries']}" if here else "- | -"]
            if there:
                per = there["summary"]["bytes_per_query"] if there["summary"] else "-"
                cells.append(f"{there['success']} | {there['queries']} | {there['served']} | {per}")
            else:
                cells.append("- | - | - | -")
            lines.append(f"| {clip} | {' | '.join(cells)} |")
        both = [c for c, w in pairs.items() if len(w) == 2]
        for where in ("in-process", "remote"):
            done = [pairs[c][where] for c in both]
            won = [r["queries"] for r in done if r["success"]]
            lines.append(
                f"- {where}, the {len(both)} clips measured both ways: {len(won)} fooled, mean queries of the "
                f"fooled {_mean([float(q) for q in won])}, median {statistics.median(won) if won else '-'}"
            )
        served = [pairs[c]["remote"] for c in both]
        exact = sum(1 for r in served if r["served"] == r["summary"]["requests"])
        lines += [
            f"- the service's own count equals the query summary's on {exact} of {len(served)} remote runs",
            "",
        ]
    return lines


def _checkpoints(r: dict[str, Any], field: str) -> str:
    return ", ".join(f"{k}: {v:.2f}" if v is not None else f"{k}: -" for k, v in r[field].items())


def _hsja_lines(rows: dict[str, Any]) -> list[str]:
    """hsja returns the closest boundary point it visited; rows measured before that change (no
    `returns`) recorded the last one, and are kept to check that the trajectory did not move."""
    lines = ["## hsja (L2, label-only decisions): distortion by queries spent, in-process", ""]
    lines += [
        "The L2 at a checkpoint is what hsja returns at that budget, the closest boundary point reached",
        "within it (the first k queries of a longer run are a k-query run: the attack never looks at its",
        "budget); the last boundary point, which the paper returns, is beside it.",
        "",
    ]
    runs = [r for r in rows.values() if r["part"] == "hsja" and r.get("returns") == "closest"]
    lines += [
        "| clip | budget | success | L2 returned at checkpoints | last boundary point's L2 | RMS (/255) returned | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: (r["clip"], r["budget"])):
        rms = ", ".join(f"{k}: {v}" for k, v in r["rms_255"].items())
        lines.append(
            f"| {r['clip']} | {r['budget']} | {r['success']} | {_checkpoints(r, 'distortion_l2')} "
            f"| {_checkpoints(r, 'last_l2')} | {rms} | {r['seconds']} |"
        )
    lines += ["", "Per checkpoint, over the largest-budget run of each clip that reached it:", ""]
    lines += [
        "| queries | clips | fooled | mean L2 returned | median L2 returned | mean RMS (/255) | mean L2 of the last point |",
        "|---|---|---|---|---|---|---|",
    ]
    best: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r["clip"] not in best or r["budget"] > best[r["clip"]]["budget"]:
            best[r["clip"]] = r
    for c in sorted({int(k) for r in best.values() for k in r["distortion_l2"]}):
        at = [r for r in best.values() if r["budget"] >= c and str(c) in r["distortion_l2"]]
        l2 = [r["distortion_l2"][str(c)] for r in at if r["distortion_l2"][str(c)] is not None]
        last = [r["last_l2"][str(c)] for r in at if r["last_l2"][str(c)] is not None]
        rms = [r["rms_255"][str(c)] for r in at if r["rms_255"][str(c)] is not None]
        med = f"{statistics.median(l2):.2f}" if l2 else "-"
        mean_l2 = f"{statistics.mean(l2):.2f}" if l2 else "-"
        mean_rms = f"{statistics.mean(rms):.3f}" if rms else "-"
        mean_last = f"{statistics.mean(last):.2f}" if last else "-"
        lines.append(f"| {c} | {len(at)} | {len(l2)} | {mean_l2} | {med} | {mean_rms} | {mean_last} |")
    reported = [r for r in runs if r["reported_l2"] == r["distortion_l2"][str(r["budget"])]]
    lines += [
        "",
        f"- the report's distortion equals the closest point's at the full budget on {len(reported)} of {len(runs)} runs",
    ]
    # the rows taken before the change: the same trajectory means the same last points
    older = [r for r in rows.values() if r["part"] == "hsja" and "returns" not in r]
    same = total = 0
    for o in older:
        new = best.get(o["clip"])
        for c, v in o["distortion_l2"].items() if new else ():
            if new is not None and c in new["last_l2"]:
                total += 1
                same += new["last_l2"][c] == v
    if older:
        lines.append(
            f"- the last boundary point equals the one recorded at the same clip and checkpoint by the "
            f"{len(older)} runs before the change at {same} of {total} checkpoints"
        )
    return lines


def table(_: argparse.Namespace, rows: dict[str, Any]) -> None:
    lines = ["# Attacks on a deployed model (`vidattack serve tiny-c3d`, 127.0.0.1)", ""]
    lines += ["Rows from benchmarks/results/remote.jsonl; commands in benchmarks/remote_bench.py.", ""]
    lines += [
        "Service and attack share this 2-core machine with other work (load averages 3-12 during these",
        "runs), so seconds and requests/s measure this machine, not a network; queries, success and",
        "distortion do not depend on it. The clips and budgets measured are the rows below.",
        "",
    ]
    lines += _vbad_lines(rows)
    lines += [
        "## Requests per second by --concurrency",
        "",
        "| clip | queries | concurrency | requests | served | req/s | bytes/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        if r["part"] == "qps":
            budget = r["key"].split("/")[2]
            lines.append(
                f"| {r['clip']} | {budget} | {r['concurrency']} | {r['requests']} | {r['served']} | {r['requests_per_second']} | {r['bytes_per_query']} |"
            )
    lines += [""]
    lines += _hsja_lines(rows)
    for r in rows.values():
        if r["part"] == "hsja-remote":
            lines.append("")
            lines.append(
                f"Remote check, {r['clip']}, {r['budget']} queries: last boundary point's L2 remote {r['distortion_remote']:.3f}, in-process {r['distortion_in_process']:.3f}, same trajectory: {r['same_trajectory']}, served {r['served']}, summary {r['summary']['requests']} requests."
            )
    for r in rows.values():
        if r["part"] == "resume":
            lines.append("")
            lines.append(
                f"Kill -9 and --resume ({r['clip']}, hsja, {r['budget']} queries): killed after the service had {r['served_at_kill']} requests; after --resume the service counted {r['served_total']}, the query summary {r['summary_requests']} ({r['requests_before_resume']} before the resume, {r['replayed_from_log']} answers replayed from the log), report queries {r['report_queries']}, exit {r['exit']}."
            )
    lines += [
        "",
        "hsja gains little after 5k queries when its steps reach the 8-bit floor: every query is an 8-bit",
        "video, and once the geometric step falls under half a level it rounds away and the gradient",
        "estimate is spent without a move.",
    ]
    (RESULTS.parent / "remote.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["vbad", "qps", "hsja", "resume", "table"])
    p.add_argument("--clips", default="rotate_ccw_1,move_left_1,still_1")
    p.add_argument("--clip", default="move_left_1")
    p.add_argument("--queries", type=int, default=1200)
    p.add_argument("--concurrency", default="1,4,8")
    p.add_argument("--checkpoints", default="1000,5000")
    p.add_argument("--remote-queries", type=int, default=300)
    p.add_argument("--kill-after", type=int, default=100)
    args = p.parse_args()
    {"vbad": vbad, "qps": qps, "hsja": hsja, "resume": resume, "table": table}[args.part](
        args, load_rows(RESULTS)
    )


if __name__ == "__main__":
    main()
