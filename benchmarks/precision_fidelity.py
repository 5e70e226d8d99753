"""Does bf16 lose success? The 19 examples attacked in fp32 and in bf16, judged in fp32 alike (#25).

For each bundled model (tiny-c3d, tiny-lrcn, tiny-c3d-at-pgd), attack (pgd-linf, multav-linf, sparse,
each at its defaults, untargeted, seed 0) and example clip, the attack runs once per precision through
the pipeline's own stages (`decode`, `sample`, `run_attack`): its steps under autocast for bf16, the
clean label and the judging of the 8-bit quantized result in float32 for both. Each row keeps the
success and the margin `max_{k != clean} log p_k - log p_clean` of the judged result (positive: fooled),
appended as it finishes to `--out` (resumable: rows already there are skipped). Rendered, with the
speed records, by `benchmarks/precision_tables.py`.

    python benchmarks/precision_fidelity.py --out benchmarks/results/precision-fidelity.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from rows import append_row, load_rows  # noqa: E402

from vidattack.attacks import get_attack  # noqa: E402
from vidattack.models import load_model  # noqa: E402
from vidattack.pipeline.stages import decode, run_attack, sample  # noqa: E402
from vidattack.precision import attack_precision, cpu_flags  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="tiny-c3d,tiny-lrcn,tiny-c3d-at-pgd")
    ap.add_argument("--attacks", default="pgd-linf,multav-linf,sparse")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--examples", default=str(ROOT / "examples"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True, help="JSON-line records (resumed when rerun)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    done = load_rows(args.out)
    clips = sorted(Path(args.examples).glob("*.mp4"))
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    dev = torch.device("cpu")
    views = {name: load_model(name, device=dev) for name in args.models.split(",")}
    for attack_name in args.attacks.split(","):  # the quick attacks first: every model's row early
        attack = get_attack(attack_name)
        for model_name, view in views.items():
            for clip in clips:
                frames = decode(clip, view)
                sampled = sample(frames, view, attack, dev)
                for precision in args.precisions.split(","):
                    key = f"{model_name}/{attack_name}/{clip.name}/{precision}"
                    if key in done:
                        continue
                    start, cpu = time.perf_counter(), time.thread_time()
                    with attack_precision(precision):
                        result = run_attack(sampled, attack, seed=0).result
                    log_p = result.adversarial_log_probs[0]
                    clean = int(result.clean_labels[0])
                    margin = float(
                        log_p.clone().index_fill_(0, torch.tensor([clean]), -torch.inf).max() - log_p[clean]
                    )
                    row = {
                        "key": key, "model": model_name, "attack": attack_name, "clip": clip.name,
                        "precision": result.precision, "asked": precision, "success": bool(result.success[0]),
                        "margin": margin, "clean": clean, "adversarial": int(result.adversarial_labels[0]),
                        "linf": result.norms["linf"][0], "seconds": time.perf_counter() - start,
                        "cpu_seconds": time.thread_time() - cpu, "threads": args.threads,
                        "load": os.getloadavg()[0], "cpu_bf16_flags": flags, "torch": torch.__version__,
                    }  # fmt: skip
                    append_row(args.out, row)
                    print(
                        f"{key}: success {row['success']} margin {margin:+.3f} ({row['cpu_seconds']:.2f} s CPU)"
                    )


if __name__ == "__main__":
    main()
