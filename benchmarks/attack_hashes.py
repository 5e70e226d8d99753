"""Fingerprint every registered attack: the SHA-256 of the adversarial video it writes, at a fixed seed.

Refactors must leave these equal (issue #10's rule): run before and after and diff the two files.

    python benchmarks/attack_hashes.py --out before.json
    python benchmarks/attack_hashes.py --out after.json && diff before.json after.json

Black-box attacks get a small query budget so the whole run takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Fingerprint the checkout this script lives in, not whichever copy of vidattack is installed.
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import vidattack  # noqa: E402
from vidattack.attacks.registry import attack_names  # noqa: E402

CLIPS = ("move_left_1", "still_1")
# Settings that keep a run short without changing which code paths run.
SHORT = {"vbad": {"max_queries": 400}, "p-bad": {"max_queries": 400}, "sr-bad": {"max_queries": 400}}
MODEL = {"sparse": "tiny-lrcn"}


def fingerprint(name: str, clip: str, out_dir: Path) -> dict[str, object]:
    attack = vidattack.get_attack(name, **SHORT.get(name, {}))
    model = vidattack.load_model(MODEL.get(name, "tiny-c3d"), device="cpu")
    report = vidattack.perturb_file(
        ROOT / "examples" / f"{clip}.mp4",
        attack,
        model=model,
        out_dir=out_dir,
        seed=0,
        overwrite=True,
        device="cpu",
        heatmaps=False,
    )
    frames = vidattack.load_video(report["outputs"]["adversarial"]).frames
    return {
        "frames_sha256": hashlib.sha256(frames.contiguous().numpy().tobytes()).hexdigest(),
        "success": report["success"],
        "queries": report["queries"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--attacks", default="", help="comma list (default: every registered attack)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = [a for a in args.attacks.split(",") if a] or attack_names()
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for clip in CLIPS:
                results[f"{name}/{clip}"] = fingerprint(name, clip, Path(tmp))
                print(name, clip, results[f"{name}/{clip}"], flush=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
