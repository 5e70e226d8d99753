"""Full-size HuggingFace video transformers and an ONNX export, measured (issue #23).

Three measurements, each appended as one JSON row to `benchmarks/results/hf-models.jsonl` (a row per
key; a finished key is skipped on a rerun, so an interrupted run resumes):

- `perturb:<model>`: `vidattack perturb` of a bundled example, PGD-Linf 5 steps, eps 4/255, as a
  subprocess: the report's wall time per stage, the process's wall time and peak RSS (`wait4`);
- `ratio:<model>:t<threads>:r<i>`: in one process on the same bound model and input, our `pgd-linf`
  (5 steps; it decides the clean label and judges the 8-bit result itself) against torchattacks' PGD
  (5 steps, no random start, plus the label and judging forwards a torchattacks user needs), `--repeats`
  pairs alternating which goes first: wall and (one thread) CPU times, ratio (CPU time with one thread,
  else wall). Rows of the older single-run form (`ratio:<model>`) are kept and shown apart;
- `onnx-qps:<model>:b<N>`: classification queries (videos) per second through the view of an ONNX
  export in onnxruntime, and of the same model in torch (no_grad), batches of N.

Models are randomly initialised from transformers' default configs (VideoMAE-B 16x224x224, TimeSformer-B
8x224x224) and saved to --cache; nothing is downloaded. The ONNX model is a small VideoMAE (hidden 128,
4 layers, 16x112x112): exporting a full-size one takes minutes and 350 MB.

Run: python benchmarks/hf_models.py [--models videomae-b,timesformer-b] [--cache /tmp/vidattack-hf]
     [--video examples/move_left_1.mp4] [--threads 2] [--repeats 3] [--skip-onnx] [--skip-perturb]
Table: python benchmarks/hf_models_table.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rows import append_row, load_rows

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hf-models.jsonl"
EPS, ALPHA, STEPS = 4 / 255, 1 / 255, 5
#: What `build` makes: full-size default configs, and a small VideoMAE (hidden 128, 4 layers, 16x112x112)
#: that stands in for VideoMAE-B where a test or a quick check cannot afford the full one.
BUILDABLE = ("videomae-b", "timesformer-b", "videomae-small112")


def build(name: str, cache: Path) -> Path:
    """The folder of a randomly initialised model with its default processor, built once."""
    folder = cache / name
    if (folder / "config.json").is_file():
        return folder
    import transformers as t

    torch.manual_seed(0)
    if name == "videomae-b":
        model, proc = t.VideoMAEForVideoClassification(t.VideoMAEConfig()), t.VideoMAEVideoProcessor()
    elif name == "timesformer-b":
        model, proc = (
            t.TimesformerForVideoClassification(t.TimesformerConfig()),
            t.TimesformerVideoProcessor(),
        )
    elif name == "videomae-small112":
        config = t.VideoMAEConfig(
            image_size=112, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256
        )
        model = t.VideoMAEForVideoClassification(config)
        proc = t.VideoMAEVideoProcessor(size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112})
    else:
        raise SystemExit(f"unknown model {name}")
    model.eval().save_pretrained(folder)
    proc.save_pretrained(folder)
    return folder


def perturb_row(name: str, folder: Path, video: Path, out: Path, threads: int) -> dict[str, Any]:
    """`vidattack perturb` as a child process: its report's stage times, wall time and peak RSS."""
    cmd = [
        sys.executable, "-m", "vidattack", "perturb", str(video), "-m", str(folder), "-a", "pgd-linf",
        "--eps", "4/255", "--alpha", "1/255", "--steps", str(STEPS), "--threads", str(threads),
        "--out", str(out), "--outputs", "adv,report", "--overwrite", "--format", "json", "--quiet",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"perturb failed: {stderr.decode(errors='replace')[-2000:]}")
    report = json.loads(stdout)["results"][0]
    return {
        "key": f"perturb:{name}" if threads == 2 else f"perturb:{name}:t{threads}",
        "command": " ".join(["python", *cmd[1:]]),
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),  # the work done, whatever the machine's load
        "threads": threads,
        "stages_s": {k: round(v, 2) for k, v in report["timing"].items()},
        "success": report["success"],
        "queries": report["queries"],
    }


def ratio_rows(name: str, folder: Path, video: Path, threads: int, repeats: int) -> list[dict[str, Any]]:
    """Ours vs torchattacks' PGD on the same bound model and input, `repeats` times each in one process,
    alternating which goes first (so a slow spell of the shared machine falls on both). Each row has the
    wall time and, with one thread, that thread's CPU time (the work done, steady under load)."""
    import torchattacks

    from vidattack.attacks import get_attack
    from vidattack.models import load_model
    from vidattack.models.view import sampled_frames
    from vidattack.video import load_video

    torch.set_num_threads(threads)
    view = load_model(str(folder))
    frames = load_video(video).frames
    plan = view.plan(frames.shape[0])
    model = view.bind(plan)
    x = sampled_frames(frames, plan)
    ours = get_attack("pgd-linf", eps=EPS, alpha=ALPHA, steps=STEPS)
    ta = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)

    def run_ta() -> None:
        with torch.no_grad():
            labels = model(x).argmax(1)
        adv = ta(x, labels)
        with torch.no_grad():
            model(adv).argmax(1)

    def timed(job: Any) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.thread_time()
        job()
        return time.perf_counter() - w0, time.thread_time() - c0

    with torch.no_grad():
        model(x)  # warm-up: first-call allocations and kernel selection charged to neither
    rows = []
    for i in range(repeats):
        order = [("ours", lambda: ours(model, x)), ("torchattacks", run_ta)]
        if i % 2:
            order.reverse()
        t = {who: timed(job) for who, job in order}
        key = "cpu" if threads == 1 else "wall"
        pick = 1 if threads == 1 else 0
        rows.append(
            {
                "key": f"ratio:{name}:t{threads}:r{i}",
                "model": name,
                "repeat": i,
                "first": order[0][0],
                "ours_s": round(t["ours"][0], 2),
                "torchattacks_s": round(t["torchattacks"][0], 2),
                "ours_cpu_s": round(t["ours"][1], 2),
                "torchattacks_cpu_s": round(t["torchattacks"][1], 2),
                "timed_by": key,
                "ratio": round(t["ours"][pick] / t["torchattacks"][pick], 3),
                "threads": threads,
            }
        )
    return rows


def onnx_rows(
    name: str, folder: Path, threads: int, batches: list[int], seconds: float
) -> list[dict[str, Any]]:
    """Queries per second of the ONNX export and of the torch model, through the same kind of view."""
    from vidattack.models import load_model

    torch.set_num_threads(threads)
    onnx_dir = folder.parent / f"{folder.name}-onnx"
    if not (onnx_dir / "onnx" / "model.onnx").is_file():
        import transformers

        (onnx_dir / "onnx").mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "video_preprocessor_config.json"):
            (onnx_dir / f).write_bytes((folder / f).read_bytes())
        net = transformers.AutoModelForVideoClassification.from_pretrained(folder).eval()
        wrapped = _Logits(net)
        clip = torch.rand(2, net.config.num_frames, 3, net.config.image_size, net.config.image_size)
        torch.onnx.export(
            wrapped, (clip,), str(onnx_dir / "onnx" / "model.onnx"), input_names=["pixel_values"],
            output_names=["logits"], dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch")}},
        )  # fmt: skip
    rows = []
    views = {"torch": load_model(str(folder)), "onnxruntime": load_model(str(onnx_dir))}
    for b in batches:
        row: dict[str, Any] = {"key": f"onnx-qps:{name}:b{b}", "batch": b, "threads": threads}
        for runtime, view in views.items():
            bound = view.bind(view.plan(16))
            x = torch.rand(b, 16, 3, 112, 112)
            with torch.no_grad():
                bound(x)  # warm-up
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    bound(x)
                    n += b
            row[f"{runtime}_qps"] = round(n / (time.perf_counter() - t0), 2)
        row["ratio"] = round(row["onnxruntime_qps"] / row["torch_qps"], 3)
        rows.append(row)
    return rows


class _Logits(torch.nn.Module):
    """A transformers classifier returning its logits tensor (what the exporter wants)."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixel_values: Any) -> Any:
        return self.net(pixel_values=pixel_values).logits


def context() -> dict[str, Any]:
    """Where and when a row was measured; the machine is shared, so the 1-minute load average at the
    end of the measurement says how contended its timings were."""
    return {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_1min": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="videomae-b,timesformer-b")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/vidattack-hf"))
    ap.add_argument("--video", type=Path, default=ROOT / "examples" / "move_left_1.mp4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-onnx", action="store_true")
    ap.add_argument("--skip-perturb", action="store_true", help="only the ratio (and ONNX) rows")
    ap.add_argument("--repeats", type=int, default=3, help="ours/torchattacks pairs per model")
    ap.add_argument("--onnx-seconds", type=float, default=10.0)
    args = ap.parse_args()
    done = load_rows(RESULTS)
    for name in [m for m in args.models.split(",") if m]:
        folder = build(name, args.cache)
        perturb_key = f"perturb:{name}" if args.threads == 2 else f"perturb:{name}:t{args.threads}"
        if perturb_key not in done and not args.skip_perturb:
            append_row(
                RESULTS,
                {
                    **perturb_row(name, folder, args.video, args.cache / f"{name}-out", args.threads),
                    **context(),
                },
            )
            print(f"perturb:{name} done", file=sys.stderr)
        if f"ratio:{name}:t{args.threads}:r0" not in done:
            for row in ratio_rows(name, folder, args.video, args.threads, args.repeats):
                append_row(RESULTS, {**row, **context()})
            print(f"ratio:{name} done", file=sys.stderr)
    if not args.skip_onnx and not any(k.startswith("onnx-qps:") for k in done):
        folder = build("videomae-small112", args.cache)
        for row in onnx_rows("videomae-small112", folder, args.threads, [1, 8], args.onnx_seconds):
            append_row(RESULTS, {**row, **context()})


if __name__ == "__main__":
    main()
