"""Report fields measured on decoded files, and atomic JSON writing.

Everything here compares 8-bit frames `(T, H, W, 3)` as decoded from files, so the numbers describe
what a viewer (or a model) actually gets, not an attack's float tensor.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CHUNK_FRAMES = 4


def prediction(
    log_probs_or_probs: Tensor, labels: list[str], *, top_k: int = 5, is_log: bool = True
) -> dict[str, Any]:
    """A prediction dict: `index`, `label`, `confidence` and the `top` list, from `(K,)` scores."""
    p = log_probs_or_probs.detach().float().cpu()
    p = p.exp() if is_log else p
    k = min(top_k, p.numel())
    conf, idx = p.topk(k)
    top = [
        {
            "index": int(i),
            "label": labels[int(i)] if int(i) < len(labels) else str(int(i)),
            "confidence": float(c),
        }
        for c, i in zip(conf, idx, strict=True)
    ]
    return {**top[0], "top": top}


def perturbation_stats(clean: Tensor, adv: Tensor) -> dict[str, Any]:
    """Perturbation of a written video, in [0, 1] pixel units, from decoded uint8 frames.

    `linf`, `l2` (whole video), `map` (mean absolute perturbation over all pixels), `ratio_max`
    (largest max(a/x, x/a); 0 -> 0 counts as 1, 0 -> non-zero as infinite), `frames_perturbed` (count),
    `perturbed_frames` (their numbers), `sparsity` (share of frames left untouched), `per_frame_map`.
    Works in int16 on a few frames at a time: a 10-second 1080p video is 1.9 GB as uint8, and a float
    copy of it (let alone several temporaries) would not fit beside the video in the memory budget.
    """
    if clean.shape != adv.shape:
        raise ValueError(
            f"expected frames of the same shape, got {tuple(clean.shape)} and {tuple(adv.shape)}"
        )
    t = clean.shape[0]
    pixels = clean[0].numel() if t else 1
    linf, sq, ratio_max = 0, 0.0, 1.0
    per_frame: list[float] = []
    for s in range(0, t, CHUNK_FRAMES):
        c = clean[s : s + CHUNK_FRAMES].to(torch.int16)
        a = adv[s : s + CHUNK_FRAMES].to(torch.int16)
        d = (a - c).abs_().flatten(1)  # (t, H*W*3) int16
        linf = max(linf, int(d.max()))
        sq += float(d.float().square_().sum(dtype=torch.float64))
        per_frame.extend((d.sum(dim=1, dtype=torch.float64) / (pixels * 255.0)).tolist())
        changed = d != 0
        if bool(changed.any()):
            cc, aa = c.flatten(1)[changed].float(), a.flatten(1)[changed].float()
            small, big = torch.minimum(cc, aa), torch.maximum(cc, aa)
            ratio_max = math.inf if bool((small == 0).any()) else max(ratio_max, float((big / small).max()))
    perturbed = [i for i, m in enumerate(per_frame) if m > 0]
    return {
        "linf": linf / 255.0,
        "l2": math.sqrt(sq) / 255.0,
        "map": (sum(per_frame) / t) if t else 0.0,
        "ratio_max": ratio_max,
        "frames_perturbed": len(perturbed),
        "perturbed_frames": perturbed,
        "sparsity": 1.0 - len(perturbed) / t if t else 1.0,
        "per_frame_map": per_frame,
    }


def versions() -> dict[str, str]:
    """Versions of everything that decides the numbers in a report."""
    import av
    import torchvision

    from vidattack import __version__

    return {
        "vidattack": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "av": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "python": platform.python_version(),
    }


def _json_safe(value: Any) -> Any:
    # JSON has no infinity; a ratio bound broken by a black pixel is reported as the string "inf"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def to_json(data: dict[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps(_json_safe(data), indent=indent, allow_nan=False)


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temp file in the same folder and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(path: Path, report: dict[str, Any]) -> None:
    """The report is written last and atomically, so its presence means the job finished."""
    write_atomic(path, (to_json(report) + "\n").encode())
