"""ONNX exports run with onnxruntime: a scores-only model (no gradients).

`--model FILE.onnx`, or a folder holding `onnx/model.onnx` (the onnx-community layout) or `model.onnx`.
Weights in an external file beside it (`model.onnx.data`, what `torch.onnx.export` writes) are read by
onnxruntime itself. What the graph does not say comes, in this order, from:

1. HuggingFace JSON beside the `.onnx` file or one folder up: `config.json` (labels from `id2label`,
   frame count) and `video_preprocessor_config.json` / `preprocessor_config.json` (`hf_config`);
2. the model's metadata (`metadata_props`): `vidattack.preprocess` (the JSON of a `Preprocess`),
   `vidattack.labels` (a JSON list), `vidattack.output` (`logits`, the default, or `probabilities`);
3. the graph's input shape alone: frames per clip and crop size, no normalisation (with a note).

The input layout is read from the graph's input shape: `(B, T, 3, H, W)` is `NTCHW` (HuggingFace),
`(B, 3, T, H, W)` is `NCTHW` (3D CNNs). Sessions run on the CPU, with torch's thread count.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vidattack import files
from vidattack.errors import BadCheckpointError, UsageError, VidattackError
from vidattack.models.checkpoint import LoadRequest
from vidattack.models.extras import import_extra
from vidattack.models.hf_config import labels_from_id2label, read_folder_config
from vidattack.models.labels import fit_labels
from vidattack.models.messages import first_line
from vidattack.models.scores_only import ScoresOnlyNet
from vidattack.models.view import ModelView, Preprocess


def onnx_file_in(folder: Path) -> Path | None:
    """The ONNX model a folder holds: `onnx/model.onnx` (onnx-community) or `model.onnx`; else None."""
    for candidate in (folder / "onnx" / "model.onnx", folder / "model.onnx"):
        if candidate.is_file():
            return candidate
    return None


class OnnxNet(ScoresOnlyNet):
    """An onnxruntime session as a scores-only network: clips in the graph's layout -> logits `(B, K)`.

    Clips go in as float32 (float16 for a half-precision graph); a graph exported with a fixed batch
    of 1 is run one clip at a time.
    """

    def __init__(self, session: Any, path: Path, probabilities: bool = False) -> None:
        super().__init__(describe=path.name)
        self.session = session
        graph_input = session.get_inputs()[0]
        self.input_name = str(graph_input.name)
        self.one_at_a_time = graph_input.shape[0] == 1
        self.input_dtype = np.float16 if graph_input.type == "tensor(float16)" else np.float32
        self.probabilities = probabilities

    def scores(self, clips: Tensor) -> Tensor:
        x = clips.float().contiguous().numpy().astype(self.input_dtype, copy=False)
        batches = [x[i : i + 1] for i in range(len(x))] if self.one_at_a_time else [x]
        try:
            out = np.concatenate([self.session.run(None, {self.input_name: b})[0] for b in batches])
        except Exception as e:  # onnxruntime's own error types: one line naming the model, no traceback
            raise VidattackError(f"{self.describe} failed in onnxruntime: {first_line(e)}") from e
        y = torch.from_numpy(np.asarray(out, dtype=np.float32))
        # probabilities p become logits log p: softmax(log p) = p, so the view's averaging is unchanged
        return y.clamp_min(1e-30).log() if self.probabilities else y


def open_session(path: Path) -> Any:
    """An onnxruntime CPU session for `path`, using torch's thread count (`--threads`)."""
    ort = import_extra("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types, all Exceptions
        raise BadCheckpointError(f"cannot load {path} with onnxruntime: {first_line(e)}") from e


def load_onnx(spec: str, path: Path, req: LoadRequest) -> ModelView:
    """The scores-only `ModelView` of the ONNX model at `path` (see the module docstring)."""
    if req.arch is not None:
        raise UsageError(f"--arch does not apply to an ONNX model ({path.name} holds its graph)")
    session = open_session(path)
    layout, shape = input_layout(session, path)
    meta = dict(session.get_modelmeta().custom_metadata_map)
    pre, labels, notes = _describe(path, layout, shape, meta)
    k = _num_classes(session, labels)
    if req.num_classes is not None and req.num_classes != k:
        raise BadCheckpointError(f"expected {req.num_classes} classes, got a model with {k} in {path}")
    if req.labels:
        labels = fit_labels(req.labels, k, "--labels")
    elif labels is None:
        labels = [f"class_{i}" for i in range(k)]
    else:
        labels = fit_labels(labels, k, f"the labels found for {path.name}")
    output = meta.get("vidattack.output", "logits")
    if output not in ("logits", "probabilities"):
        raise BadCheckpointError(
            f"expected vidattack.output logits or probabilities in {path}, got {output!r}"
        )
    return ModelView(
        net=OnnxNet(session, path, probabilities=output == "probabilities"),
        preprocess=pre,
        labels=labels,
        name=spec,
        sha256=_digest(path),
        source=f"ONNX model ({path.name}, onnxruntime, scores only)",
        notes=notes,
    )


def input_layout(session: Any, path: Path) -> tuple[str, list[int | None]]:
    """`NTCHW` or `NCTHW` from the graph's first input shape, and that shape (None for symbolic dims)."""
    shape = [d if isinstance(d, int) and d > 0 else None for d in session.get_inputs()[0].shape]
    if len(shape) != 5:
        raise BadCheckpointError(f"expected a 5-dimensional video input in {path}, got shape {shape}")
    if shape[2] == 3:
        return "NTCHW", shape
    if shape[1] == 3:
        return "NCTHW", shape
    raise BadCheckpointError(
        f"expected 3 colour channels at dimension 1 or 2 of the input of {path}, got shape {shape}"
    )


def _describe(
    path: Path, layout: str, shape: list[int | None], meta: dict[str, str]
) -> tuple[Preprocess, list[str] | None, list[str]]:
    """Preprocessing, labels (None: unknown) and notes, from JSON files, metadata or the graph."""
    t = shape[1] if layout == "NTCHW" else shape[2]
    h, w = shape[3], shape[4]
    notes: list[str] = []
    folders = (path.parent, path.parent.parent)
    config = next((d / "config.json" for d in folders if (d / "config.json").is_file()), None)
    cfg = read_folder_config(config, *folders) if config is not None else None
    labels = cfg.labels() if cfg is not None else None
    if cfg is not None and cfg.processor is not None:
        pre = cfg.preprocess(clip_len=cfg.clip_len or t)
        notes += [*cfg.notes, f"preprocessing from {cfg.processor_path}"]
    elif "vidattack.preprocess" in meta:
        pre = _from_meta(meta["vidattack.preprocess"], path)
    elif t is not None and h is not None and w is not None:
        pre = Preprocess(clip_len=t, resize=min(h, w), crop=(h, w))
        notes.append(
            f"no preprocessing found beside {path.name} or in its metadata: {t} frames resized and "
            f"cropped to {h}x{w}, values in [0, 1] without normalisation"
        )
    else:
        raise BadCheckpointError(
            f"expected config.json and a processor JSON beside {path} (or vidattack.preprocess metadata): "
            "its input shape does not give the frame count and size"
        )
    if "vidattack.labels" in meta and labels is None:
        labels = _labels_from_meta(meta["vidattack.labels"], path)
    pre = Preprocess.from_dict({**pre.to_dict(), "layout": layout})
    _check_fits_graph(pre, t, h, w, path)
    return pre, labels, notes


def _from_meta(text: str, path: Path) -> Preprocess:
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return Preprocess.from_dict(data)
    except (ValueError, TypeError) as e:
        raise BadCheckpointError(f"bad vidattack.preprocess metadata in {path}: {first_line(e)}") from e


def _labels_from_meta(text: str, path: Path) -> list[str]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BadCheckpointError(f"expected JSON in the vidattack.labels metadata of {path}") from e
    if isinstance(data, dict):
        return labels_from_id2label(data, None, f"the vidattack.labels metadata of {path}") or []
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise BadCheckpointError(f"expected a list of names in the vidattack.labels metadata of {path}")
    return list(data)


def _check_fits_graph(pre: Preprocess, t: int | None, h: int | None, w: int | None, path: Path) -> None:
    # a graph with fixed dims accepts nothing else: refuse a mismatch now rather than at the first query
    if t is not None and pre.clip_len != t:
        raise BadCheckpointError(
            f"expected clips of {t} frames by the graph of {path}, preprocessing gives {pre.clip_len}"
        )
    crop = (pre.crop, pre.crop) if isinstance(pre.crop, int) else pre.crop
    if h is not None and w is not None and crop is not None and tuple(crop) != (h, w):
        raise BadCheckpointError(
            f"expected {h}x{w} frames by the graph of {path}, preprocessing crops to {crop[0]}x{crop[1]}"
        )


def _num_classes(session: Any, labels: list[str] | None) -> int:
    """The class count: the output's last dimension when fixed, else the labels' count."""
    out_shape = session.get_outputs()[0].shape
    last = out_shape[-1] if out_shape else None
    if isinstance(last, int) and last > 0:
        return last
    if labels:
        return len(labels)
    raise BadCheckpointError("the ONNX output's class count is symbolic and no labels say it: pass --labels")


def _digest(path: Path) -> str:
    """The SHA-256 of the graph file, combined with its external-data file when there is one."""
    data = path.with_name(path.name + ".data")
    if not data.is_file():
        return files.sha256_file(path)
    return hashlib.sha256(f"{files.sha256_file(path)}\0{files.sha256_file(data)}".encode()).hexdigest()
