"""Adversarial training: `train_model` (what `vidattack train` runs), the Madry-AT loop with any
white-box attack as inner maximisation (`loop`), AAT/CAT budget schedules (`schedules`) and GAT's
discriminator (`discriminator`). The networks it builds, GAT's denoiser and the safetensors files
trained models are saved as belong to the models they describe (`vidattack.models.trained`,
`vidattack.models.denoiser`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vidattack.errors import UsageError
from vidattack.models.huggingface import HFVideoNet, save_hf_folder
from vidattack.models.trained import arch_of, build_network, canonical_arch, save_trained
from vidattack.train.clips import ClipSet, prepare_clips
from vidattack.train.config import TrainConfig, TrainEventFn
from vidattack.train.loop import TrainResult, train
from vidattack.train.schedules import AdaptiveBudget, CurriculumBudget, FixedBudget, make_schedule

__all__ = [
    "AdaptiveBudget",
    "ClipSet",
    "CurriculumBudget",
    "FixedBudget",
    "TrainConfig",
    "TrainEventFn",
    "TrainResult",
    "dataset_labels",
    "make_schedule",
    "prepare_clips",
    "train",
    "train_model",
]

log = logging.getLogger(__name__)


def dataset_labels(spec: str) -> list[str]:
    """The class names of DATASET `spec` for a model trained from scratch: the generator's classes for
    `synthetic:N`, the subfolder names of a class folder, the sorted distinct labels of a manifest."""
    from vidattack.data import datasets as ds

    text = str(spec)
    if text.startswith("synthetic"):
        from vidattack.data.synthetic import CLASSES

        return list(CLASSES)
    path = Path(text)
    if path.is_dir():
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".csv", ".jsonl", ".ndjson"):
        names = ds.manifest_labels(path)
        if all(n.lstrip("-").isdigit() for n in names):
            raise UsageError(f"{path}: labels are class indices; pass --labels with the class names")
        return names
    raise UsageError(f"expected a folder, a .csv or .jsonl manifest or synthetic:N, got {text}")


def train_model(
    config: TrainConfig,
    *,
    data: str,
    heldout: str | None = None,
    out: Path,
    arch: str | None = None,
    init: str | None = None,
    labels: list[str] | None = None,
    holdout_fraction: float = 0.1,
    progress: TrainEventFn | None = None,
    checkpoint: Path | None = None,
    resume: Path | None = None,
    trust_checkpoint: bool = False,
) -> TrainResult:
    """Train a model on DATASET `data` and write it to `out`, loadable by `load_model`: a safetensors
    file, or for a HuggingFace `init` a `save_pretrained` folder with its processor JSON.

    The network is a fresh `arch` (bundled tiny or torchvision) or the model `init` names (any
    `load_model` spec; fine-tuning). Held-out accuracies are measured on `heldout`, or on a seeded
    `holdout_fraction` of `data` kept out of training.
    """
    import torch

    from vidattack.data.datasets import Dataset, load_dataset
    from vidattack.models import load_model
    from vidattack.models.checkpoint import check_state_file
    from vidattack.models.view import ModelView

    if (arch is None) == (init is None):
        raise UsageError("expected exactly one of --arch (train from scratch) or --init MODEL (fine-tune)")
    if resume is not None:  # a damaged state is found before minutes of data loading
        check_state_file(resume)
    if init is not None:
        view = load_model(init, trust_checkpoint=trust_checkpoint)
        arch_name = _hf_architecture(view.net, out, config) or arch_of(view.net)
        if labels is not None and len(labels) != view.num_classes:
            raise UsageError(f"expected {view.num_classes} labels for {init}, got {len(labels)}")
        if labels is not None:
            view.labels = list(labels)
    else:
        assert arch is not None
        arch_name = canonical_arch(arch)
        names = labels if labels is not None else dataset_labels(data)
        torch.manual_seed(config.seed)  # --seed seeds the fresh weights too, not only the run
        net, pre = build_network(arch_name, len(names))
        view = ModelView(
            net=net, preprocess=pre, labels=list(names), name=arch_name, source=f"new {arch_name}"
        )
    config.arch, config.init, config.data = arch_name, init, data

    train_ds = load_dataset(data, view.labels)
    if heldout is not None:
        held_ds: Dataset | None = load_dataset(heldout, view.labels)
    elif holdout_fraction > 0 and len(train_ds) > 1:
        perm = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(config.seed)).tolist()
        n_held = max(1, round(holdout_fraction * len(train_ds)))
        held_ds = Dataset(
            spec=f"{data} (held out)",
            items=tuple(train_ds.items[i] for i in perm[:n_held]),
            labels=train_ds.labels,
        )
        train_ds = Dataset(
            spec=data, items=tuple(train_ds.items[i] for i in perm[n_held:]), labels=train_ds.labels
        )
    else:
        held_ds = None
    train_clips = prepare_clips(train_ds, view.preprocess, progress=progress, what="train")
    held_clips = (
        prepare_clips(held_ds, view.preprocess, progress=progress, what="held-out") if held_ds else None
    )
    result = train(
        view, train_clips, held_clips, config, progress=progress, checkpoint=checkpoint, resume=resume
    )
    training: dict[str, Any] = {
        **config.to_dict(),
        "heldout_data": heldout,
        "seconds": round(result.seconds, 1),
        "train_clips": len(train_clips),
        "torch_threads": torch.get_num_threads(),
    }
    if isinstance(result.view.net, HFVideoNet):  # a folder, as it came: save_pretrained + processor
        save_hf_folder(
            result.view.net,
            result.view.labels,
            out,
            info={"training": training, "heldout": {**result.heldout, "history": result.history}},
        )
        return result
    # only G and F (the view's net) go into the model file: inference needs nothing else, and GAT's
    # discriminator (result.discriminator) lives on only in the --resume training state
    save_trained(
        result.view.net,
        result.view.preprocess,
        result.view.labels,
        out,
        arch=arch_name,
        training=training,
        heldout={**result.heldout, "history": result.history},
    )
    return result


def _hf_architecture(net: Any, out: Path, config: TrainConfig) -> str | None:
    """The architecture of a HuggingFace network (None for others), once `out` and `config` are checked
    to fit it: it is saved as a folder, and a `save_pretrained` folder has no place for GAT's denoiser."""
    if not isinstance(net, HFVideoNet):
        return None
    if out.suffix.lower() == ".safetensors":
        raise UsageError(
            f"a HuggingFace model is saved as a folder (save_pretrained): expected --out FOLDER, got {out}"
        )
    if config.denoiser:
        raise UsageError("--denoiser does not apply to a HuggingFace model: its folder cannot hold one")
    return type(net.model).__name__
