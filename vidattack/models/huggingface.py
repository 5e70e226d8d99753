"""HuggingFace `transformers` video classifiers kept as a folder (`save_pretrained`, or downloaded).

A folder holds `config.json` (architecture, `id2label`, frame count, input size), the weights
(`model.safetensors`, possibly sharded with `model.safetensors.index.json`; `pytorch_model.bin` only
with `trust_checkpoint`) and usually `video_preprocessor_config.json` or `preprocessor_config.json`
(or `processor_config.json`, from a whole processor saved with its tokenizer, as VideoPrism's is).
The network is built by `AutoModelForVideoClassification` from the folder alone (no remote code, no
download); it takes `(B, T, 3, H, W)` as `pixel_values` (`pixel_values_videos` for V-JEPA 2 and
VideoPrism) and the view does the processor's preprocessing in front of it (`hf_config`), so every
white-box attack, `--robust-to`, batching, eval and train see an ordinary differentiable `ModelView`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidattack import files
from vidattack.errors import BadCheckpointError, UsageError
from vidattack.models.checkpoint import LoadRequest
from vidattack.models.extras import import_extra
from vidattack.models.hf_config import FolderConfig, read_folder_config, read_json
from vidattack.models.labels import fit_labels
from vidattack.models.messages import few, first_line
from vidattack.models.view import ModelView, Preprocess

#: Weight files, safest first: safetensors cannot run code; a pickled `.bin` can, so it needs trust.
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def weight_files(folder: Path) -> tuple[list[Path], bool]:
    """The folder's weight files (an index and its shards count as the index) and whether they are
    safetensors; `([], True)` when it has none."""
    for names, safe in ((SAFE_WEIGHTS, True), (PICKLED_WEIGHTS, False)):
        found = [folder / n for n in names if (folder / n).is_file()]
        if found:
            return [*found, *_shards(found[-1])], safe
    return [], True


def _shards(index: Path) -> list[Path]:
    """The shard files a `*.index.json` names (its `weight_map` values), in order; none for a file."""
    if not index.name.endswith(".index.json"):
        return []
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict):
        raise BadCheckpointError(f"expected a weight_map in {index}")
    names = sorted({str(v) for v in weight_map.values()})
    if any(Path(n).name != n for n in names):  # a shard outside the folder is not this folder's
        raise BadCheckpointError(f"expected shard file names in the weight_map of {index}, got paths")
    missing = [n for n in names if not (index.parent / n).is_file()]
    if missing:
        raise BadCheckpointError(f"{index} names shards that are not in its folder: {few(missing)}")
    return [index.parent / n for n in names]


def is_hf_folder(folder: Path) -> bool:
    """A folder with `config.json` and weights `transformers` can load."""
    return (folder / "config.json").is_file() and bool(weight_files(folder)[0])


class HFVideoNet(nn.Module):
    """A `transformers` video classifier as a plain network: `(B, T, 3, H, W)` -> logits `(B, K)`."""

    def __init__(self, model: nn.Module, input_name: str, processor_path: Path | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_name = input_name
        # the processor JSON the view's preprocessing came from: a trained copy is saved beside it
        self.processor_path = processor_path

    def forward(self, clips: Tensor) -> Tensor:
        logits = self.model(**{self.input_name: clips}).logits
        # VideoPrism's attention-pooling head keeps its one query: (B, 1, K)
        return logits[:, 0] if logits.dim() == 3 and logits.shape[1] == 1 else logits


def load_hf_folder(spec: str, folder: Path, req: LoadRequest) -> ModelView:
    """The `ModelView` of the HuggingFace folder `folder` (see the module docstring).

    Raises:
        BadCheckpointError: no transformers, an architecture that is not a video classifier, pickled
            weights without trust, missing or mismatched weights, unreadable JSON.
        UsageError: `--arch` given (the folder names its architecture).
    """
    if req.arch is not None:
        raise UsageError(f"--arch does not apply to a HuggingFace folder ({folder} names its architecture)")
    weights, safe = weight_files(folder)
    if not weights:
        raise BadCheckpointError(f"expected model.safetensors (or pytorch_model.bin) in {folder}, found none")
    if not safe and not req.trust:
        raise BadCheckpointError(
            f"{folder} holds pickled weights ({weights[0].name}), which can run code when loaded: pass "
            "--trust-checkpoint if you trust it, or convert it to model.safetensors"
        )
    cfg = read_folder_config(folder / "config.json")
    arch = _video_architecture(cfg, folder)
    pre = cfg.preprocess()  # checked before the weights are read: a full-size model is 350 MB
    _check_input_size(cfg, pre, folder)
    model = _from_pretrained(folder, safe)
    net = HFVideoNet(model, _input_name(arch), cfg.processor_path)
    k = int(model.config.num_labels)
    if req.num_classes is not None and req.num_classes != k:
        raise BadCheckpointError(f"expected {req.num_classes} classes, got a model with {k} in {folder}")
    labels = fit_labels(req.labels, k, "--labels") if req.labels else cfg.labels(k) or _numbered(k)
    return ModelView(
        net=net,
        preprocess=pre,
        labels=labels,
        name=spec,
        sha256=_folder_digest([folder / "config.json", *weights]),
        source=f"HuggingFace folder ({arch})",
        notes=cfg.notes,
    )


def _video_architecture(cfg: FolderConfig, folder: Path) -> str:
    """`config.architectures[0]`, checked to be one of transformers' video classifiers."""
    transformers = import_extra("transformers")
    from transformers.models.auto.modeling_auto import MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES

    known = list(MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES.values())
    arch = cfg.architecture
    if arch is None or arch not in known:
        raise BadCheckpointError(
            f"expected a video classifier in {folder / 'config.json'} (architectures: {few(known)}), got "
            f"{arch or 'none'} (transformers {transformers.__version__})"
        )
    return arch


def _input_name(arch: str) -> str:
    """The keyword the architecture's forward takes its video as."""
    import transformers

    return str(getattr(getattr(transformers, arch), "main_input_name", "pixel_values"))


def _from_pretrained(folder: Path, safe: bool) -> Any:
    """`AutoModelForVideoClassification.from_pretrained` on local files only, quietly, with every weight
    of the architecture required to be in the folder (a missing head would be random)."""
    from transformers import AutoModelForVideoClassification

    with _quiet_transformers():
        try:
            model, info = AutoModelForVideoClassification.from_pretrained(
                str(folder),
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=safe,
                # attacks run in float32; a hub folder saved in half precision is loaded up to it
                dtype=torch.float32,
                output_loading_info=True,
            )
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise BadCheckpointError(f"cannot load {folder} with transformers: {first_line(e)}") from e
    missing = [str(k) for k in info.get("missing_keys", [])]
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", [])]
    if missing or mismatched:
        what = f"missing {few(missing)}" if missing else f"of another shape: {few(mismatched)}"
        raise BadCheckpointError(f"the weights in {folder} do not fit its config.json: {what}")
    return model


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and warnings while loading: the library never prints, and
    what matters (missing weights) is checked and raised here."""
    from transformers.utils import logging as tlog

    bars, verbosity = tlog.is_progress_bar_enabled(), tlog.get_verbosity()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if bars:
            tlog.enable_progress_bar()


#: The file beside a trained folder's weights that says how `vidattack train` made it.
TRAINING_FILE = "vidattack_training.json"


def save_hf_folder(net: HFVideoNet, labels: list[str], out: Path, *, info: Mapping[str, Any]) -> Path:
    """Write `net` as a HuggingFace folder `out` that `load_model(out)` loads with the same predictions:
    `save_pretrained` (config.json with `labels` as `id2label`, model.safetensors), the processor JSON
    it was loaded with, and `info` (training settings, held-out accuracies) as `vidattack_training.json`.

    The folder is written beside `out` under a hidden name and renamed into place, so a half-written
    folder never loads; an existing `out` (the caller checked --overwrite) is moved aside first and
    removed after.
    """
    model: Any = net.model
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {name: i for i, name in enumerate(labels)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = files.temp_path_beside(out)
    try:
        tmp.mkdir()
        with _quiet_transformers():
            model.save_pretrained(str(tmp), safe_serialization=True)
        if net.processor_path is not None:
            shutil.copyfile(net.processor_path, tmp / net.processor_path.name)
        (tmp / TRAINING_FILE).write_text(json.dumps(dict(info), indent=1) + "\n", encoding="utf-8")
        old = files.temp_path_beside(out) if out.exists() or out.is_symlink() else None
        if old is not None:
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise files.write_failed(e, out) from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return out


def read_training_info(folder: Path) -> dict[str, Any]:
    """The `training` and `heldout` a trained folder's `vidattack_training.json` holds (empty if absent)."""
    path = folder / TRAINING_FILE
    data = read_json(path) if path.is_file() else {}
    return {k: data.get(k) or {} for k in ("training", "heldout")}


def _check_input_size(cfg: FolderConfig, pre: Preprocess, folder: Path) -> None:
    # VideoMAE, TimeSformer, ViViT and VideoPrism accept only their configured size: say so at load, not
    # mid-attack. The frames are the crop's size, or without a crop an exact resize's (VideoPrism's).
    size = cfg.input_size
    out = pre.crop if pre.crop is not None else pre.resize if isinstance(pre.resize, tuple) else None
    out_hw = (out, out) if isinstance(out, int) else out
    if size is not None and out_hw is not None and tuple(out_hw) != size:
        what = "crops" if pre.crop is not None else "resizes"
        raise BadCheckpointError(
            f"the processor of {folder} {what} to {out_hw[0]}x{out_hw[1]}, but config.json expects "
            f"{size[0]}x{size[1]} frames"
        )


def _numbered(k: int) -> list[str]:
    return [f"class_{i}" for i in range(k)]


def _folder_digest(paths: list[Path]) -> str:
    """One SHA-256 for a folder's identity: of the names and SHA-256s of its config and weight files."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{files.sha256_file(path)}\n".encode())
    return digest.hexdigest()


def describe_hf_folder(folder: Path) -> dict[str, Any]:
    """What `vidattack models DIR` shows of a HuggingFace folder, from its JSON files alone (no
    transformers import, no weights read)."""
    weights, safe = weight_files(folder)
    cfg = read_folder_config(folder / "config.json")
    labels = cfg.labels()
    pre = cfg.preprocess()
    return {
        "kind": "huggingface",
        "architecture": cfg.architecture,
        "weights": [w.name for w in weights],
        "needs_trust": not safe,
        "processor": cfg.processor_path.name if cfg.processor_path else None,
        "labels": labels,
        "preprocess": pre.to_dict(),
        "notes": cfg.notes,
    }
