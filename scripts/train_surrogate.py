"""Train the bundled image surrogate `tiny-image-cnn` that V-BAD transfers tentative perturbations from.

    python scripts/train_surrogate.py [--out vidattack/models/weights] [--epochs N] [--size 16] [--threads 2]

The task is deliberately *not* the video task: single 112 x 112 still frames, each showing one textured
object (disc, square, triangle, ring, cross or diamond) on a textured background, drawn like the frames
of `vidattack.data.synthetic` but by this script's own generator, labelled by **where the object is**:
the cell of a 3 x 3 grid that holds its centre. No motion, no video labels: the surrogate is a public
image model in the sense of the V-BAD paper, just much smaller than the paper's ImageNet ensemble.
(Telling the shape apart was the first choice, but a network this small did not learn it within the
CPU budget; localisation it learns in a minute, and its features respond to the object's outline.)

The network sees frames shrunk to 16 x 16 (`--size`), a thumbnail classifier. That is a choice for
V-BAD: the sign of its gradient, brought back to a 112-pixel frame, changes on the scale of 7 pixels,
where the bundled video models (stride-4 stems) respond and where a black box's +-eps steps add up
from one iteration to the next. The same network trained on full 112-pixel frames gave sign maps that
flip from pixel to pixel, and V-BAD then needed more than 3000 queries on an example clip that it now
fools in about 700 (benchmarks/vbad_table.py has the numbers).

Everything is seeded (frames from `torch.Generator`s, weights from `torch.manual_seed`), so a rerun on
the same torch version reproduces the file up to CPU floating-point nondeterminism. It takes about two
to four minutes on one or two CPU cores and writes a ~0.35 MB safetensors file whose metadata records
the architecture, labels, input size, held-out accuracy and seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidattack.files import atomic_path  # noqa: E402
from vidattack.models.architectures import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vidattack.models.surrogates import TINY_NAME, TinyImageCNN  # noqa: E402

SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "ring", "cross", "diamond")
CELLS: tuple[str, ...] = tuple(
    f"{r}_{c}" for r in ("top", "middle", "bottom") for c in ("left", "centre", "right")
)
TRAIN_SEED = 31337
HELDOUT_SEED = 4242
SIZE = 112


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _smooth_noise(g: torch.Generator, size: int) -> Tensor:
    """A smooth random texture `(size, size)` in [0, 1]: two octaves of upsampled noise."""
    lo, hi = (int(v) for v in torch.randint(3, 8, (2,), generator=g))
    coarse = torch.rand(1, 1, lo, hi, generator=g)
    lo, hi = (int(v) for v in torch.randint(10, 24, (2,), generator=g))
    fine = torch.rand(1, 1, lo, hi, generator=g)
    tex = 0.65 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    tex = tex + 0.35 * F.interpolate(fine, size=(size, size), mode="bicubic", align_corners=False)
    tex = tex[0, 0]
    return (tex - tex.min()) / (tex.max() - tex.min()).clamp_min(1e-6)


def _signed_distance(shape: int, ux: Tensor, uy: Tensor) -> Tensor:
    """Distance to the outline in object units (negative inside) for object coordinates `ux`, `uy`."""
    if shape == 0:  # disc
        return torch.sqrt(ux * ux + uy * uy) - 1.0
    if shape == 1:  # square
        return torch.maximum(ux.abs(), uy.abs()) - 0.82
    if shape == 2:  # triangle
        angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
        return torch.stack([math.cos(a) * ux + math.sin(a) * uy for a in angles]).amax(0) - 0.65
    if shape == 3:  # ring
        return (torch.sqrt(ux * ux + uy * uy) - 0.72).abs() - 0.28
    if shape == 4:  # cross: union of two bars
        bar1 = torch.maximum(ux.abs() - 1.0, uy.abs() - 0.3)
        bar2 = torch.maximum(uy.abs() - 1.0, ux.abs() - 0.3)
        return torch.minimum(bar1, bar2)
    return (ux.abs() + uy.abs()) / math.sqrt(2) - 0.72  # diamond


def make_frame(shape: int, seed: int) -> tuple[Tensor, int]:
    """One frame `(3, SIZE, SIZE)` float in [0, 1] (on the 8-bit grid) showing shape `shape`, and the
    cell (row * 3 + column) of a 3 x 3 grid over the centres' range that holds the object's centre."""
    g = torch.Generator().manual_seed(int(seed))
    bg_colours = torch.rand(2, 3, generator=g)
    background = bg_colours[0] + (bg_colours[1] - bg_colours[0]) * _smooth_noise(g, SIZE)[..., None]
    bg_mean = background.mean(dim=(0, 1))
    obj_colours = torch.rand(2, 3, generator=g)
    for _ in range(32):
        if torch.linalg.vector_norm(obj_colours.mean(0) - bg_mean) >= 0.35:
            break
        obj_colours = torch.rand(2, 3, generator=g)
    radius = _uniform(g, 12.0, 30.0)
    cx, cy = _uniform(g, 20.0, SIZE - 20.0), _uniform(g, 20.0, SIZE - 20.0)
    angle = _uniform(g, 0.0, 2 * math.pi)
    coords = torch.arange(SIZE, dtype=torch.float32) + 0.5
    dx, dy = coords.view(1, SIZE) - cx, coords.view(SIZE, 1) - cy
    ux = (math.cos(angle) * dx + math.sin(angle) * dy) / radius  # (H, W)
    uy = (-math.sin(angle) * dx + math.cos(angle) * dy) / radius
    alpha = (0.5 - _signed_distance(shape, ux, uy) * radius).clamp(0.0, 1.0)[..., None]
    stripe_angle = _uniform(g, 0.0, math.pi)
    stripes = 0.5 + 0.5 * torch.sin(
        _uniform(g, 4.0, 9.0) * (ux * math.cos(stripe_angle) + uy * math.sin(stripe_angle))
        + _uniform(g, 0, 6.3)
    )
    w = _uniform(g, 0.4, 0.8)
    blotches = F.interpolate(torch.rand(1, 1, 6, 6, generator=g), size=(SIZE, SIZE), mode="bilinear")[0, 0]
    tex = (w * stripes + (1 - w) * blotches)[..., None]
    colour = obj_colours[0] + tex * (obj_colours[1] - obj_colours[0])
    frame = background + alpha * (colour - background)  # (H, W, 3)
    frame = frame + torch.randn(frame.shape, generator=g) * _uniform(g, 0.02, 0.06)
    cell = min(int((cy - 20.0) / ((SIZE - 40.0) / 3)), 2) * 3 + min(int((cx - 20.0) / ((SIZE - 40.0) / 3)), 2)
    return frame.clamp(0, 1).mul(255).round().div(255).permute(2, 0, 1).contiguous(), cell


def make_frames(n_per_shape: int, seed: int, size: int = SIZE) -> tuple[Tensor, Tensor]:
    """Frames `(N, 3, size, size)` (shapes interleaved) and their grid-cell labels `(N,)`.

    Frames are drawn at 112 x 112 and shrunk to `size` the way `ImageSurrogate` shrinks video frames
    (bilinear, antialiased), so the network trains on what it will see."""
    n = n_per_shape * len(SHAPES)
    seeds = torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(seed))
    shapes = torch.arange(n) % len(SHAPES)
    made = [make_frame(int(shapes[i]), int(seeds[i])) for i in range(n)]
    frames = torch.stack([f for f, _ in made])
    if size != SIZE:
        frames = F.interpolate(
            frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    cells = torch.tensor([c for _, c in made])
    return frames, cells


def normalize(x: Tensor) -> Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def accuracy(net: TinyImageCNN, frames: Tensor, labels: Tensor) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(labels), 200):
        correct += int((net(normalize(frames[i : i + 200])).argmax(1) == labels[i : i + 200]).sum())
    return correct / len(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "vidattack" / "models" / "weights")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-per-shape", type=int, default=1000)
    parser.add_argument("--heldout-per-shape", type=int, default=150)
    parser.add_argument("--channels", default="24,32,64,96", help="widths of stem and the three blocks")
    parser.add_argument("--size", type=int, default=16, help="input size: frames are shrunk to this")
    parser.add_argument("--stem-kernel", type=int, default=3)
    parser.add_argument("--stem-stride", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.time()
    frames, labels = make_frames(args.train_per_shape, TRAIN_SEED, args.size)
    held_frames, held_labels = make_frames(args.heldout_per_shape, HELDOUT_SEED, args.size)
    print(
        f"generated {len(labels)} training and {len(held_labels)} held-out frames in {time.time() - t0:.0f}s"
    )

    torch.manual_seed(TRAIN_SEED)
    g = torch.Generator().manual_seed(TRAIN_SEED)
    channels = [int(c) for c in args.channels.split(",")]
    net = TinyImageCNN(
        len(CELLS), channels=channels, stem_kernel=args.stem_kernel, stem_stride=args.stem_stride
    )
    batch = 64
    steps = args.epochs * math.ceil(len(labels) / batch)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    print(f"{sum(p.numel() for p in net.parameters())} parameters, {args.epochs} epochs", flush=True)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(labels), generator=g)
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(net(normalize(frames[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        acc = accuracy(net, held_frames, held_labels)
        print(
            f"epoch {epoch + 1}/{args.epochs} loss {total / len(labels):.4f} held-out acc {acc:.3f} "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )

    net.eval()
    acc = accuracy(net, held_frames, held_labels)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{TINY_NAME}.safetensors"
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {
        "arch": "TinyImageCNN",
        "labels": json.dumps(list(CELLS)),
        "channels": json.dumps(channels),
        "stem_kernel": str(args.stem_kernel),
        "stem_stride": str(args.stem_stride),
        "input_size": str(args.size),
        "normalization": "imagenet",
        "task": "3 x 3 grid cell of the object's centre in single synthetic still frames (not the video task)",
        "accuracy": f"{acc:.4f}",
        "train_seed": str(TRAIN_SEED),
        "heldout_seed": str(HELDOUT_SEED),
        "train_script": "scripts/train_surrogate.py",
        "torch": torch.__version__,
    }
    with atomic_path(path) as tmp:  # a half-written file never looks like a model
        save_file(state, str(tmp), metadata=metadata)
    path.chmod(0o644)  # safetensors writes 0600; a packaged file must be readable by everyone
    print(
        f"held-out accuracy {acc:.4f}; wrote {path} ({path.stat().st_size / 1e3:.0f} kB) "
        f"in {time.time() - t0:.0f}s total"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
