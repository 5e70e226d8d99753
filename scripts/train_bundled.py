"""Train the bundled tiny models on freshly generated synthetic clips and save them as safetensors.

    python scripts/train_bundled.py [--out vidattack/models/weights] [--only tiny-c3d|tiny-lrcn] [--epochs N]

Everything is seeded: the data come from `vidattack.data.synthetic` with fixed seeds and the weights
from `torch.manual_seed`, so a rerun on the same torch version reproduces the files up to CPU
floating-point nondeterminism. Both models train in about fifteen minutes on two CPU cores.

The held-out accuracy printed at the end (and stored in the file's metadata) is measured on clips
drawn with a different seed from the training clips.

TinyLRCN also gets an auxiliary loss during training only: a linear probe on its per-frame features
regresses the position and size of the object and the position of its spot in that frame (the
generator knows them). Without it the
per-frame CNN takes far longer to learn where the object is, and the LSTM sees no motion until it
does. The probe is thrown away; the saved model is a plain TinyLRCN.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidattack.data.synthetic import CLASSES, SPOT_OFFSET, make_dataset_with_state  # noqa: E402
from vidattack.files import atomic_path  # noqa: E402
from vidattack.models.tiny import TinyC3D, TinyLRCN  # noqa: E402
from vidattack.models.view import Preprocess  # noqa: E402

TRAIN_SEED = 20240611  # data set and weights
HELDOUT_SEED = 777  # the accuracy stored in the metadata; the tests and examples use other seeds
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)

# Label permutations under exact symmetries of the generator: mirroring a clip left-right, top-bottom
# or in time is another valid clip of a (possibly different) class. Training on them is free data.
# Class order: move_left, move_right, move_up, move_down, rotate_cw, rotate_ccw, zoom_in, zoom_out,
# flash, still.
_SYMMETRIES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (3, (1, 0, 2, 3, 5, 4, 6, 7, 8, 9)),  # flip W: left <-> right, cw <-> ccw
    (2, (0, 1, 3, 2, 5, 4, 6, 7, 8, 9)),  # flip H: up <-> down, cw <-> ccw
    (1, (1, 0, 3, 2, 5, 4, 7, 6, 8, 9)),  # reverse time: every motion reverses
)


@dataclass(frozen=True)
class Recipe:
    """How one bundled model is built and trained."""

    name: str
    arch: str
    make: Callable[[], nn.Module]
    layout: str
    epochs: int
    lr: float
    aux_weight: float = 0.0  # weight of the per-frame position/size probe (TinyLRCN only)


RECIPES = {
    "tiny-c3d": Recipe("tiny-c3d", "TinyC3D", lambda: TinyC3D(len(CLASSES)), "NCTHW", epochs=7, lr=3e-3),
    "tiny-lrcn": Recipe(
        "tiny-lrcn", "TinyLRCN", lambda: TinyLRCN(len(CLASSES)), "NTCHW", epochs=20, lr=3e-3, aux_weight=3.0
    ),
}


def to_input(clips: Tensor, pre: Preprocess) -> Tensor:
    """uint8 clips `(B, T, H, W, 3)` -> normalized floats in the net's layout, as `BoundModel` does
    for 112x112 frames (where its resize and crop are the identity)."""
    ncthw = pre.layout == "NCTHW"
    # Permute the uint8 tensor (1 byte an element) and make it contiguous before converting: float
    # ops on a permuted view are several times slower than the network itself.
    x = clips.permute(0, 4, 1, 2, 3) if ncthw else clips.permute(0, 1, 4, 2, 3)
    x = x.contiguous().float()
    shape = (1, 3, 1, 1, 1) if ncthw else (1, 1, 3, 1, 1)
    mean = torch.tensor(pre.mean).view(shape) * 255.0
    std = torch.tensor(pre.std).view(shape) * 255.0
    return x.sub_(mean).div_(std)


def augment(
    clips: Tensor, labels: Tensor, states: Tensor, g: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """Apply each symmetry to a random half of the batch, relabelling and moving the states to match."""
    clips, labels, states = clips.clone(), labels.clone(), states.clone()
    width, height = clips.shape[3], clips.shape[2]
    for dim, perm in _SYMMETRIES:
        pick = torch.rand(len(labels), generator=g) < 0.5
        if not pick.any():
            continue
        clips[pick] = clips[pick].flip(dim)
        labels[pick] = torch.tensor(perm)[labels[pick]]
        # state columns: centre x, centre y, radius, angle (clockwise from +x), brightness offset
        if dim == 3:
            states[pick, :, 0] = width - states[pick, :, 0]
            states[pick, :, 3] = math.pi - states[pick, :, 3]
        elif dim == 2:
            states[pick, :, 1] = height - states[pick, :, 1]
            states[pick, :, 3] = -states[pick, :, 3]
        else:
            states[pick] = states[pick].flip(1)
    return clips, labels, states


def aux_targets(states: Tensor, size: int) -> Tensor:
    """Per-frame probe targets `(B, T, 5)`: object centre x, y and spot centre x, y in [-1, 1], and
    log radius."""
    half = size / 2
    cx, cy, radius, angle = states[..., 0], states[..., 1], states[..., 2], states[..., 3]
    spot_x = cx + SPOT_OFFSET * radius * torch.cos(angle)
    spot_y = cy + SPOT_OFFSET * radius * torch.sin(angle)
    return torch.stack(
        [
            cx / half - 1,
            cy / half - 1,
            spot_x / half - 1,
            spot_y / half - 1,
            torch.log(radius / (size / 5.6)),
        ],
        dim=-1,
    )


@torch.no_grad()
def evaluate(net: nn.Module, clips: Tensor, labels: Tensor, pre: Preprocess) -> tuple[float, float]:
    """Accuracy and mean probability of the true class."""
    net.eval()
    correct, p_true = 0, 0.0
    for i in range(0, len(labels), 50):
        probs = F.softmax(net(to_input(clips[i : i + 50], pre)), dim=-1)
        y = labels[i : i + 50]
        correct += int((probs.argmax(-1) == y).sum())
        p_true += float(probs.gather(1, y[:, None]).sum())
    return correct / len(labels), p_true / len(labels)


def train(
    recipe: Recipe,
    data: tuple[Tensor, Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    *,
    epochs: int,
    batch: int = 32,
) -> tuple[nn.Module, Preprocess]:
    """Train one model from scratch with AdamW and a one-cycle schedule; returns it in eval mode."""
    torch.manual_seed(TRAIN_SEED)
    g = torch.Generator().manual_seed(TRAIN_SEED)
    net = recipe.make()
    probe = nn.Linear(net.head.in_features if isinstance(net, TinyLRCN) else 1, 5)
    use_probe = recipe.aux_weight > 0 and isinstance(net, TinyLRCN)
    pre = Preprocess(
        clip_len=16,
        num_clips=1,
        resize=112,
        crop=112,
        mean=MEAN,
        std=STD,
        layout=recipe.layout,  # type: ignore[arg-type]
    )
    clips, labels, states = data
    steps = epochs * math.ceil(len(labels) / batch)
    params = [*net.parameters(), *(probe.parameters() if use_probe else [])]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=steps, pct_start=0.15)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"[{recipe.name}] {n_params} parameters, {len(labels)} clips, {epochs} epochs", flush=True)
    start = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(labels), generator=g)
        total, aux_total, seen = 0.0, 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x, y, st = augment(clips[idx], labels[idx], states[idx], g)
            inp = to_input(x, pre)
            if use_probe and isinstance(net, TinyLRCN):
                feats = net.features(inp)  # (B, T, hidden)
                loss = F.cross_entropy(net.recurrent_logits(feats).mean(dim=1), y)
                aux = F.mse_loss(probe(feats), aux_targets(st, clips.shape[2]))
                aux_total += float(aux.detach()) * len(idx)
                loss = loss + recipe.aux_weight * aux
            else:
                loss = F.cross_entropy(net(inp), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        acc, conf = evaluate(net, *val, pre)
        aux_note = f" (probe {aux_total / seen:.4f})" if use_probe else ""
        print(
            f"[{recipe.name}] epoch {epoch + 1}/{epochs} loss {total / seen:.4f}{aux_note} "
            f"val acc {acc:.3f} p(true) {conf:.3f} ({time.time() - start:.0f}s)",
            flush=True,
        )
    net.eval()
    return net, pre


def save(net: nn.Module, recipe: Recipe, pre: Preprocess, accuracy: float, out: Path) -> Path:
    """Write the weights with the metadata `vidattack.models.bundled.load_bundled` needs."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{recipe.name}.safetensors"
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {
        "arch": recipe.arch,
        "labels": json.dumps(list(CLASSES)),
        "preprocess": json.dumps(pre.to_dict()),
        "accuracy": f"{accuracy:.4f}",
        "heldout_seed": str(HELDOUT_SEED),
        "train_seed": str(TRAIN_SEED),
        "train_script": "scripts/train_bundled.py",
        "torch": torch.__version__,
    }
    with atomic_path(path) as tmp:  # a half-written file never looks like a model
        save_file(state, str(tmp), metadata=metadata)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "vidattack" / "models" / "weights")
    parser.add_argument("--only", choices=sorted(RECIPES), help="train only this model")
    parser.add_argument("--epochs", type=int, help="override each recipe's number of epochs")
    parser.add_argument("--train-per-class", type=int, default=250, help="training clips per class")
    parser.add_argument("--heldout-per-class", type=int, default=50, help="held-out clips per class")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.time()
    data = make_dataset_with_state(args.train_per_class, seed=TRAIN_SEED)
    heldout = make_dataset_with_state(args.heldout_per_class, seed=HELDOUT_SEED)[:2]
    print(
        f"generated {len(data[1])} training and {len(heldout[1])} held-out clips in "
        f"{time.time() - start:.0f}s",
        flush=True,
    )
    # A small slice of the held-out set is enough to watch training; the full set is scored at the end.
    watch = (heldout[0][:200], heldout[1][:200])
    names = [args.only] if args.only else list(RECIPES)
    for name in names:
        recipe = RECIPES[name]
        t0 = time.time()
        net, pre = train(recipe, data, watch, epochs=args.epochs or recipe.epochs)
        acc, conf = evaluate(net, *heldout, pre)
        path = save(net, recipe, pre, acc, args.out)
        print(
            f"[{name}] held-out accuracy {acc:.4f} (mean p(true) {conf:.3f}) on {len(heldout[1])} clips; "
            f"trained in {time.time() - t0:.0f}s; wrote {path} ({path.stat().st_size / 1e3:.0f} kB)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
