"""How much faster can bfloat16 make a PGD job on this CPU at best? (issue #25's 3x target)

    OMP_NUM_THREADS=1 python benchmarks/bf16_ceiling.py [--models r3d_18,mc3_18] [--threads 1] [--repeats 5]

No attack code runs here: only the bare work every PGD job is made of, on a torchvision video network
with random weights and one 16x112x112 clip, input gradients only (the attack's case):
a forward pass without gradients (the clean label and the judging of the 8-bit result, both fp32 by
the issue's rule) and a forward+backward to the input, in fp32 and in every bf16 form torch offers on a
CPU: autocast (what `--precision bf16` uses), weights cast to bf16 once, and bf16 with
channels_last_3d. The best job ratio any implementation could reach against an fp32 job of 5 steps is

    ceiling = (2 forward_fp32 + 5 fwdbwd_fp32) / (2 forward_fp32 + 5 fwdbwd_bf16_best)

Times are the medians over `--repeats` of one thread's CPU time (with one thread; wall clock with
more), after a warm-up. One row per model is appended to benchmarks/results/bf16-ceiling.jsonl, with
the CPU model and its bf16-related flags (avx512_bf16, amx_bf16), which decide the speed-up.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import append_row

RESULTS = Path(__file__).resolve().parent / "results" / "bf16-ceiling.jsonl"
STEPS = 5


def cpu_info() -> dict[str, Any]:
    """The CPU's model name and which bf16 instructions it has (from /proc/cpuinfo)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return {"cpu": name, "bf16_flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx"))}


def median_time(job: Callable[[], None], repeats: int, cpu: bool) -> float:
    job()  # warm-up: kernel selection and first allocations charged to no one
    times = []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.thread_time()
        job()
        times.append(time.thread_time() - c if cpu else time.perf_counter() - w)
    return statistics.median(times)


def measure(arch: str, repeats: int, cpu: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    net = getattr(torchvision.models.video, arch)().eval().requires_grad_(False)
    bf16 = copy.deepcopy(net).to(torch.bfloat16)
    bf16_cl = copy.deepcopy(bf16).to(memory_format=torch.channels_last_3d)
    x = torch.rand(1, 3, 16, 112, 112)

    def forward() -> None:
        with torch.no_grad():
            net(x)

    def fwdbwd(kind: str) -> Callable[[], None]:
        def job() -> None:
            xx = x.clone().requires_grad_(True)
            if kind == "fp32":
                out = net(xx)
            elif kind == "autocast":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = net(xx)
            elif kind == "bf16-weights":
                out = bf16(xx.to(torch.bfloat16))
            else:
                out = bf16_cl(xx.to(torch.bfloat16).contiguous(memory_format=torch.channels_last_3d))
            out.float().sum().backward()

        return job

    t = {"forward_fp32": median_time(forward, repeats, cpu)}
    for kind in ("fp32", "autocast", "bf16-weights", "bf16-channels-last"):
        t[f"fwdbwd_{kind}"] = median_time(fwdbwd(kind), repeats, cpu)
    best = min(t["fwdbwd_autocast"], t["fwdbwd_bf16-weights"], t["fwdbwd_bf16-channels-last"])
    fp32_job = 2 * t["forward_fp32"] + STEPS * t["fwdbwd_fp32"]
    return {
        "key": f"{arch}:t{torch.get_num_threads()}",
        "model": arch,
        "threads": torch.get_num_threads(),
        "timed_by": "cpu" if cpu else "wall",
        "repeats": repeats,
        **{k: round(v, 4) for k, v in t.items()},
        "fwdbwd_speedup_autocast": round(t["fwdbwd_fp32"] / t["fwdbwd_autocast"], 3),
        "fwdbwd_speedup_best": round(t["fwdbwd_fp32"] / best, 3),
        "job_ceiling": round(fp32_job / (2 * t["forward_fp32"] + STEPS * best), 3),
        **cpu_info(),
        "torch": torch.__version__,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_1min": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="r3d_18,mc3_18")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for arch in args.models.split(","):
        row = measure(arch, args.repeats, cpu=args.threads == 1)
        append_row(RESULTS, row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
