"""HuggingFace's JSON files read without `transformers`: labels and frame count from `config.json`,
preprocessing from `video_preprocessor_config.json`, `preprocessor_config.json` or the video part of
`processor_config.json`.

Both the HuggingFace folder loader and the ONNX loader (onnx-community repositories ship these files
beside or above `onnx/model.onnx`) read them here, so a folder and its ONNX export get the same
preprocessing.

HuggingFace processors resize (shortest edge, or an exact size), centre crop, rescale (`x * factor`,
ViViT subtracting 1 after it) and normalise frames whose values are 0..255. The view's frames are in
[0, 1]; rescaling is affine, so it folds into the view's mean and std (`fold_rescale`): the same
arithmetic, differentiable, with no second preprocessing path. The processors' integer rounding of
sizes and crop offsets is kept too (`Preprocess.rounding="floor"`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidattack import files
from vidattack.errors import BadCheckpointError
from vidattack.models.view import Preprocess

#: The processor files, in the order they are looked for (5.x video processors first). A whole
#: processor saved with its tokenizer (VideoPrism's) writes only `processor_config.json`, with the video
#: processor's settings nested under `video_processor`; only that part is read, never the text files.
PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json", "processor_config.json")
_NESTED = ("video_processor", "image_processor")  # the keys of processor_config.json read, in order
#: Processor classes that do not centre crop unless their file says so: `save_pretrained` leaves out
#: settings that are None, so a file without `do_center_crop` means the class's own default.
#: (LlavaOnevisionVideoProcessor is VideoPrism's: it resizes to an exact size and never crops. The
#: `video_kwargs` VideoPrismProcessor declares, 288 px without normalisation, are never applied in
#: transformers 5.25, which reads `videos_kwargs`: the video processor's file is what counts.)
NO_CROP_BY_DEFAULT = ("LlavaOnevisionVideoProcessor",)
#: A config or processor JSON is a few kB; anything this large is not one.
JSON_LIMIT = 8 * 2**20

_STANDARD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # transformers' IMAGENET_STANDARD_MEAN / _STD
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # IMAGENET_DEFAULT_MEAN / _STD
#: The processor classes' defaults by `model_type`, used only when a folder has no processor file
#: (the hub files often differ from them, so a note says so): (shortest edge, mean/std, rescale, offset).
CLASS_DEFAULTS: dict[str, tuple[int | None, tuple[tuple[float, ...], tuple[float, ...]], float, bool]] = {
    "videomae": (224, _STANDARD, 1 / 255, False),
    "timesformer": (224, _IMAGENET, 1 / 255, False),
    "vivit": (256, _STANDARD, 1 / 127.5, True),
    "vjepa2": (None, _IMAGENET, 1 / 255, False),
}


@dataclass
class FolderConfig:
    """What `config.json` and a processor file say about a model: architecture, labels, clip length,
    input size, preprocessing; `notes` say what was assumed."""

    config: dict[str, Any]
    processor: dict[str, Any] | None
    processor_path: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str | None:
        archs = self.config.get("architectures")
        return str(archs[0]) if isinstance(archs, list) and archs else None

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def clip_len(self) -> int | None:
        """Frames per clip: `num_frames` (VideoMAE, TimeSformer, ViViT) or `frames_per_clip` (V-JEPA 2)."""
        for key in ("num_frames", "frames_per_clip"):
            value = self.config.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def image_size(self) -> int | None:
        """The square input size the network was built for: `image_size` or `crop_size` (V-JEPA 2)."""
        for key in ("image_size", "crop_size"):
            value = self.config.get(key)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The (height, width) the network was built for: `image_size` as an int or a pair (VideoPrism's
        config allows either), or `crop_size` (V-JEPA 2)."""
        value = self.config.get("image_size")
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
            return (value[0], value[1])
        size = self.image_size
        return (size, size) if size is not None else None

    def labels(self, num_classes: int | None = None) -> list[str] | None:
        """`id2label` as a list (its keys are strings in the file), or None when it has none."""
        return labels_from_id2label(self.config.get("id2label"), num_classes, "config.json id2label")

    def preprocess(self, clip_len: int | None = None) -> Preprocess:
        """The view's preprocessing: the processor file's, or the class defaults (with a note)."""
        frames = clip_len or self.clip_len
        if frames is None:
            raise BadCheckpointError("expected num_frames or frames_per_clip in config.json, found neither")
        if self.processor is not None:
            resample = self.processor.get("resample")
            if resample not in (None, 2):  # PIL's BILINEAR; the view resizes bilinearly with antialias
                self.notes.append(f"the processor's resample {resample} is done as bilinear (antialiased)")
            return preprocess_from_processor(self.processor, frames, str(self.processor_path))
        return self._class_defaults(frames)

    def _class_defaults(self, frames: int) -> Preprocess:
        defaults = CLASS_DEFAULTS.get(self.model_type)
        size = self.image_size
        if defaults is None or size is None:
            raise BadCheckpointError(
                f"expected {', '.join(PROCESSOR_FILES[:-1])} or {PROCESSOR_FILES[-1]} beside config.json "
                f"(model_type {self.model_type or '?'} has no known defaults)"
            )
        short, (mean, std), factor, offset = defaults
        resize = short if short is not None else int(size * 256 / 224)
        self.notes.append(
            f"no processor file: {self.model_type}'s class defaults (resize {resize}, crop {size}); the hub's "
            "files often differ, so copy the processor JSON into the folder"
        )
        fmean, fstd = fold_rescale(_triple(mean, "mean"), _triple(std, "std"), factor, offset)
        return Preprocess(
            clip_len=frames, resize=resize, crop=size, mean=fmean, std=fstd, layout="NTCHW", rounding="floor"
        )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a small regular file, or a one-line `BadCheckpointError` naming the path."""
    try:
        data = json.loads(files.read_small_file(path, JSON_LIMIT))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadCheckpointError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise BadCheckpointError(f"expected a JSON object in {path}, got {type(data).__name__}")
    return data


def read_processor(*folders: Path) -> tuple[Path, dict[str, Any]] | None:
    """The first processor file in `folders` (searched in order) and its settings, or None.

    A `processor_config.json` counts only when it holds a video or image processor's settings (one
    written beside separate sub-processor files holds just `processor_class`)."""
    for folder in folders:
        for name in PROCESSOR_FILES:
            path = folder / name
            if not path.is_file():
                continue
            data = read_json(path)
            if name != "processor_config.json":
                return path, data
            nested = next((data[k] for k in _NESTED if isinstance(data.get(k), dict)), None)
            if nested is not None:
                return path, nested
    return None


def read_folder_config(config_path: Path, *processor_folders: Path) -> FolderConfig:
    """`config.json` at `config_path`, and the processor file of the first of `processor_folders` that
    has one (default: the config's own folder)."""
    config = read_json(config_path)
    found = read_processor(*(processor_folders or (config_path.parent,)))
    proc_path, processor = found if found is not None else (None, None)
    return FolderConfig(config=config, processor=processor, processor_path=proc_path)


def labels_from_id2label(id2label: Any, num_classes: int | None, where: str) -> list[str] | None:
    """Class names from an `id2label` mapping with integer or string keys 0..K-1; None if absent."""
    if id2label is None:
        return None
    if not isinstance(id2label, dict) or not id2label:
        raise BadCheckpointError(f"expected a mapping of class index to name in {where}")
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError) as e:
        raise BadCheckpointError(f"expected integer class indices as keys of {where}") from e
    k = len(by_index)
    if sorted(by_index) != list(range(k)):
        raise BadCheckpointError(f"expected the indices 0..{k - 1} in {where}, got gaps or negatives")
    if num_classes is not None and k != num_classes:
        raise BadCheckpointError(f"expected {num_classes} labels in {where} (the model's outputs), got {k}")
    return [by_index[i] for i in range(k)]


def fold_rescale(
    mean: tuple[float, float, float], std: tuple[float, float, float], factor: float, offset: bool
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The view's mean and std for `((255 x) * factor - offset - mean) / std` with x in [0, 1].

    With a = 255 * factor and b = -1 if `offset` else 0: ((a x + b) - m) / s = (x - (m - b) / a) / (s / a).
    """
    a, b = 255.0 * factor, -1.0 if offset else 0.0
    fmean = tuple((m - b) / a for m in mean)
    fstd = tuple(s / a for s in std)
    return (fmean[0], fmean[1], fmean[2]), (fstd[0], fstd[1], fstd[2])


def preprocess_from_processor(proc: dict[str, Any], clip_len: int, where: str) -> Preprocess:
    """A `Preprocess` that computes what the processor `proc` (its JSON) does, for clips of `clip_len`."""
    kind = str(proc.get("video_processor_type") or proc.get("image_processor_type") or "")
    resize: int | tuple[int, int] | None = None
    if proc.get("do_resize", True) and kind.startswith("VJEPA2"):
        # its __init__ derives the resize from the crop, whatever `size` says
        crop_h = _size(proc.get("crop_size", 256), f"crop_size in {where}")
        resize = int((crop_h if isinstance(crop_h, int) else crop_h[0]) * 256 / 224)
    elif proc.get("do_resize", True):
        resize = _size(proc.get("size"), f"size in {where}")
    do_crop = proc.get("do_center_crop")
    if do_crop is None:  # left out (None when saved): the class's default
        do_crop = kind not in NO_CROP_BY_DEFAULT
    crop = _size(proc.get("crop_size"), f"crop_size in {where}") if do_crop else None
    do_rescale = bool(proc.get("do_rescale", True))
    factor = float(proc.get("rescale_factor", 1 / 255)) if do_rescale else 1.0
    # ViViT: its image processor's `offset` (default true), its video processor always
    offset = do_rescale and bool(proc.get("offset", kind.startswith("Vivit")))
    if proc.get("do_normalize", True):
        for key in ("image_mean", "image_std"):
            if key not in proc:
                raise BadCheckpointError(f"expected {key} in {where} (do_normalize is on)")
        mean, std = _triple(proc["image_mean"], f"image_mean in {where}"), _triple(proc["image_std"], where)
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if factor <= 0 or min(std) <= 0:
        raise BadCheckpointError(f"expected a positive rescale_factor and image_std in {where}")
    fmean, fstd = fold_rescale(mean, std, factor, offset)
    return Preprocess(
        clip_len=clip_len, resize=resize, crop=crop, mean=fmean, std=fstd, layout="NTCHW", rounding="floor"
    )


def _size(value: Any, where: str) -> int | tuple[int, int]:
    """A processor size: `{"shortest_edge": n}` (an int: the short side), `{"height", "width"}` (a pair)
    or a bare int (the short side, as the video processors read it)."""
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, dict):
        if isinstance(value.get("shortest_edge"), int) and value.get("longest_edge") is None:
            return int(value["shortest_edge"])
        h, w = value.get("height"), value.get("width")
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            return (h, w)
    raise BadCheckpointError(
        f"expected {{'shortest_edge': N}}, {{'height': H, 'width': W}} or an int for {where}, got {value!r}"
    )


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if isinstance(value, int | float):
        value = [value] * 3
    if isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(v, int | float) for v in value):
        return (float(value[0]), float(value[1]), float(value[2]))
    raise BadCheckpointError(f"expected three numbers for {where}, got {value!r}")
