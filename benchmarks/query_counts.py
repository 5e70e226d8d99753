"""Independent query counts: what black-box attacks report against a counter around the model.

    python benchmarks/query_counts.py [--attacks vbad,p-bad,sr-bad] [--budget 500]
                                      [--clips move_left_1,still_1] [--model tiny-c3d]

Each clip is attacked alone, then all clips together in one call (N > 1, when their sampled shapes
agree). The counter is an `nn.Module` of this script's own around the bound model: it counts every video
that reaches forward, so it sees the template's clean-label and judging queries as well as the attack's
(issue #14: `queries` must equal this count and stay within `max_queries` per video).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from counting import VideoCounter  # noqa: E402

from vidattack.attacks import get_attack  # noqa: E402
from vidattack.models import load_model  # noqa: E402
from vidattack.models.view import sampled_frames  # noqa: E402
from vidattack.video import load_video  # noqa: E402


def count(attack_name: str, budget: int, model: nn.Module, x: torch.Tensor) -> dict[str, object]:
    """Attack `x` once at `budget` queries per video; the reported and the independent counts."""
    counter = VideoCounter(model)
    result = get_attack(attack_name, max_queries=budget)(counter, x, seed=0)
    return {
        "reported": result.queries,
        "independent": counter.seen,
        "per_video": result.info.get("queries_per_video"),
        "success": [bool(s) for s in result.success],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", default="vbad,p-bad,sr-bad")
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--clips", default="move_left_1,still_1")
    ap.add_argument("--model", default="tiny-c3d")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    view = load_model(args.model, device="cpu")
    inputs = []
    for clip in args.clips.split(","):
        video = load_video(ROOT / "examples" / f"{clip}.mp4")
        plan = view.plan(video.num_frames)
        inputs.append((clip, view.bind(plan), sampled_frames(video.frames, plan)))
    ok = True
    for name in args.attacks.split(","):
        runs = [(clip, bound, x) for clip, bound, x in inputs]
        if len({tuple(x.shape) for _, _, x in inputs}) == 1 and len(inputs) > 1:
            runs.append(
                ("+".join(c for c, _, _ in inputs), inputs[0][1], torch.cat([x for _, _, x in inputs]))
            )
        for clip, bound, x in runs:
            row = {"attack": name, "clip": clip, "budget": args.budget, **count(name, args.budget, bound, x)}
            per_video = row["per_video"] or []
            ok &= row["reported"] == row["independent"] and all(q <= args.budget for q in per_video)
            print(json.dumps(row), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
