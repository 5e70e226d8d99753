"""`--robust-to` against a deployed model (#24): V-BAD through a local h264 draw per query, remote vs
in-process, each judged on a real delivery file.

    python benchmarks/remote_robust.py [--clips A,B] [--queries 300] [--robust h264:crf=18-28]

Every row runs the real command (`python -m vidattack perturb ... --robust-to SPEC --delivery h264`,
seed 0, one thread, eot=1 on both sides so one query is one encode) against `vidattack serve tiny-c3d`
(a subprocess; its own request count from GET /stats) or the same model in process, and is appended to
benchmarks/results/remote-robust.jsonl (resumable). Printed as a markdown table at the end.
Remote: `served` is the service's count; it must equal `model.sent.requests` and stay within the budget
plus the one request that judges the delivery file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from remote_bench import perturb, served, service
from rows import append_row, load_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "remote-robust.jsonl"


def measure(clip: str, where: str, queries: int, robust: str) -> dict[str, Any]:
    """One run: V-BAD on `clip` through `robust`, in process or against the service."""
    sets = [f"max_queries={queries}"]
    extra = ["--robust-to", f"{robust},eot=1", "--delivery", "h264"]
    with tempfile.TemporaryDirectory() as tmp:
        if where == "remote":
            with service() as url:
                run = perturb(clip, "vbad", url, Path(tmp), sets, extra)
                count: int | None = served(url)
        else:
            run, count = perturb(clip, "vbad", "tiny-c3d", Path(tmp), sets, extra), None
    r = run["report"]
    sent = r["model"]["sent"]
    return {
        "key": f"{clip}/{where}/{queries}/{robust}", "clip": clip, "where": where, "budget": queries,
        "robust_to": robust, "success": r["success"], "queries": r["queries"],
        "success_after_delivery": r["delivery"]["success_after_delivery"],
        "delivered": r["delivery"]["prediction"]["label"], "served": count,
        "sent_requests": None if sent is None else sent["requests"],
        "bytes_per_query": None if sent is None else sent["bytes_per_query"],
        "encodes": r["attack"]["robust_to"]["encodes"], "seconds": run["seconds"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", default="move_left_1,rotate_ccw_1")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--robust", default="h264:crf=18-28")
    args = parser.parse_args()
    rows = load_rows(RESULTS)
    for clip in args.clips.split(","):
        for where in ("in-process", "remote"):
            key = f"{clip}/{where}/{args.queries}/{args.robust}"
            if key not in rows:
                rows[key] = measure(clip, where, args.queries, args.robust)
                append_row(RESULTS, rows[key])
                print(json.dumps(rows[key]), flush=True)
    cols = ["clip", "where", "budget", "success", "queries", "success_after_delivery", "served"]
    cols += ["sent_requests", "bytes_per_query", "encodes", "seconds"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows.values():
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
