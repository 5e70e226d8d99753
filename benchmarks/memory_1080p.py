"""Peak memory of attacking a 10-second 1080p video on the CPU, end to end (decode, attack, encode, verify).

Generates a 300-frame 1920 x 1080 clip at 30 fps (H.264, as a camera would deliver it), then runs
`vidattack perturb` on it in a child process and reports the child's peak resident memory. The model
view samples only the frames its clips need, so only those become float tensors with gradients.

Run: python benchmarks/memory_1080p.py [--attack pgd-linf] [--model tiny-c3d] [--frames 300]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_video(path: Path, frames: int, width: int, height: int, fps: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(frames):
            img = np.roll(base, shift=4 * i, axis=1)  # a moving texture
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attack", default="pgd-linf")
    ap.add_argument("--model", default=None)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "long1080p.mp4"
        t0 = time.perf_counter()
        make_video(src, args.frames, args.width, args.height, 30)
        print(
            f"generated {src.name}: {args.frames} frames {args.width}x{args.height} in {time.perf_counter() - t0:.1f}s"
        )
        cmd = [
            sys.executable,
            "-m",
            "vidattack",
            "perturb",
            str(src),
            "--attack",
            args.attack,
            "--out",
            tmp,
            "-q",
            "-f",
            "json",
        ]
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        if proc.returncode != 0:
            print(proc.stderr)
            raise SystemExit(proc.returncode)
        import json

        report = json.loads(proc.stdout)["results"][0]
        print(
            f"attack {args.attack}: success {report['success']}, after encode {report['success_after_encode']}"
        )
        print(
            f"frames sampled by the model: {len(report['model']['frames_sampled'])} of {report['video']['frames']}"
        )
        print("timing (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report["timing"].items()))
        print(
            f"wall {wall:.1f}s, peak resident memory of the vidattack process: {peak_gib:.2f} GiB (limit 8 GiB)"
        )


if __name__ == "__main__":
    main()
