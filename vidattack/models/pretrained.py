"""`torchvision:ARCH`: torchvision's Kinetics-400 weights, from the torch hub cache or downloaded once."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch

from vidattack import files
from vidattack.errors import BadCheckpointError
from vidattack.models.architectures import get_architecture
from vidattack.models.checkpoint import CheckpointMeta, LoadRequest, torch_load, unwrap
from vidattack.models.messages import first_line
from vidattack.models.state_dict import view_from_state_dict
from vidattack.models.view import ModelView


def hub_cache_path(url: str) -> Path:
    """Where torch hub keeps (or would keep) the weights file at `url`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def name_hash_prefix(path: Path) -> str | None:
    """The SHA-256 prefix torchvision puts in its weight file names (`r3d_18-b3b3357e.pth`), if any."""
    match = torch.hub.HASH_REGEX.search(path.name)
    return match.group(1) if match else None


def download_weights(url: str, dst: Path, what: str) -> Path:
    """Download weights into the hub cache, checking the name's hash prefix; offline, one line saying
    where to put the file by hand."""
    try:
        return files.download(url, dst, sha256_prefix=name_hash_prefix(dst))
    except (OSError, ValueError) as e:
        raise BadCheckpointError(
            f"cannot download torchvision weights for {what} (offline?): {first_line(e)}; download them "
            f"once ({url} into {dst.parent}) or pass ARCH:PATH"
        ) from e


def load_torchvision(spec: str, name: str, req: LoadRequest) -> ModelView:
    """The `ModelView` of torchvision's pretrained Kinetics-400 `name` (`torchvision:NAME`)."""
    arch = get_architecture(name)
    weights = arch.pretrained_weights()
    cached = hub_cache_path(weights.url)
    if not cached.is_file():
        download_weights(weights.url, cached, arch.name)
    meta = CheckpointMeta(arch=arch.name, labels=list(weights.meta["categories"]), labels_from=str(weights))
    obj, _ = torch_load(cached, trust=False)
    _, sd = unwrap(obj, meta, cached)
    return view_from_state_dict(
        spec,
        cached,
        files.sha256_file(cached),
        sd,
        meta,
        LoadRequest(arch=arch.name, labels=req.labels, trust=False, num_classes=req.num_classes),
        what="weights",
        source=f"torchvision {weights} (Kinetics-400)",
    )
