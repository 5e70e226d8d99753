"""Peak memory (RSS) of the video layer's stages on the hostile corpus's huge and long inputs.

Each step runs in its own process and prints its peak resident memory above the interpreter's own
(torch + PyAV imported) and its time:

    python benchmarks/video_memory.py [--steps probe,decode,load,rewrite,compare,heatmap] [--keep DIR]

The long input is 2000 frames of 1280x720 (`make_corpus(..., long=True)`); the model's plan is one
16-frame clip. `load` is the whole-video `load_video` (what the pipeline did before streaming).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

STEP = r"""
import resource, sys, time
import torch
torch.set_num_threads(1)
from vidattack.video import *
from vidattack.errors import VidattackError
src, out, step = sys.argv[1], sys.argv[2], sys.argv[3]
plan = lambda n: sorted({min(max(n - 16, 0) // 2 + j, n - 1) for j in range(16)})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    if step == "probe":
        i = probe(src); what = f"{i.frames} frames {i.width}x{i.height} ({i.frames_from})"
    elif step == "decode":
        s = decode_planned(src, plan); what = f"kept {tuple(s.frames.shape)} of {s.num_frames}"
    elif step == "load":
        v = load_video(src); what = f"held {tuple(v.frames.shape)}"
    else:
        s = decode_planned(src, plan)
        adv = s.replacements(s.frames ^ 1)
        written = rewrite(s, out + "/adv.mp4", adv, overwrite=True)
        what = "rewrote"
        if step in ("compare", "heatmap"):
            c = compare(s, written); what = f"compared: linf {c.linf_levels}"
        if step == "heatmap":
            lut = torch.arange(256, dtype=torch.uint8)[:, None].expand(256, 3)
            fn = lambda i, a, b: lut[(b.short() - a.short()).abs().amax(-1).long()]
            map_frames(s, written, fn, out + "/heat.mp4", overwrite=True); what += ", heatmap written"
except VidattackError as e:
    what = f"refused: {e}"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{(peak - base) / 1024:8.0f} MB above {base / 1024:.0f} MB  {time.perf_counter() - t:6.1f} s  {what}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="probe,decode,rewrite,compare,heatmap,load")
    ap.add_argument("--keep", type=Path, help="corpus folder to reuse (made if missing)")
    args = ap.parse_args()
    from hostile import make_corpus

    folder = args.keep or Path(tempfile.mkdtemp(prefix="vidattack-mem-"))
    if not (folder / "long_720p.mp4").exists():
        make_corpus(folder, huge=True, long=True)
    for name in ("huge_8192.mp4", "long_720p.mp4"):
        for step in args.steps.split(","):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", STEP, str(folder / name), str(folder.parent), step],
                capture_output=True,
                text=True,
                env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
                cwd=ROOT,
            )
            line = proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]
            print(f"{name:15} {step:8} {line}  (process {time.perf_counter() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
