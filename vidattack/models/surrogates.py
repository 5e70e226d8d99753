"""Image models that black-box video attacks use as white-box surrogates, frame by frame.

V-BAD (Jiang et al., ACM MM 2019) takes its *tentative perturbations* from the gradient of a public image
model's features. An `ImageSurrogate` is such a model cut at one layer: frames `(B, 3, H, W)` in [0, 1]
at any size -> features `(B, ...)`. It resizes the frames to the network's input size (short side, with
antialiasing, differentiably, so gradients reach the native pixels) and applies ImageNet normalization
itself, so callers always work in [0, 1] pixel units.

Available surrogates (`load_surrogate(spec)`, `spec` = `NAME` or `NAME:PATH`):

- `tiny-image-cnn` (default, bundled, offline): a small 2D CNN trained by `scripts/train_surrogate.py`
  to tell *where* the object of a single synthetic still frame is (which cell of a 3 x 3 grid): a
  static, frame-level task, not the bundled video models' motion classes. It looks at frames shrunk to
  16 x 16 (its `input_size`), so its gradient signs vary on the scale of several pixels of the video
  (why: see the script's docstring). Weights in
  `vidattack/models/weights/tiny-image-cnn.safetensors` with their metadata (architecture, labels,
  input size, accuracy, seeds).
- `resnet50`, `densenet121`, `densenet169`: torchvision ImageNet models, the paper's ensemble. Weights
  come from `NAME:PATH` (a torchvision state dict, `.pth` or `.safetensors`), else from the torch hub
  cache (`$TORCH_HOME/hub/checkpoints/`), else are downloaded once; offline this fails at once with a
  `BadCheckpointError` that says where to put the file.

Layers: each surrogate is a chain of named stages and `layer` picks where to cut, by its own name (e.g.
`layer3`, `denseblock3`, `block2`) or by a portable alias: `early`, `mid`, `late`, `logits`
(table `LAYER_ALIASES`). The official V-BAD code used the ImageNet models' logits (`fc`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack import files
from vidattack.errors import BadCheckpointError, BadParameterError
from vidattack.models.architectures import IMAGENET_MEAN, IMAGENET_STD
from vidattack.models.bundled import WEIGHTS_DIR
from vidattack.models.pretrained import hub_cache_path, name_hash_prefix

TINY_NAME = "tiny-image-cnn"

# torchvision weights of the paper's ensemble (ImageNet-1k, the weights of the paper's time).
IMAGENET_WEIGHTS: dict[str, str] = {
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "densenet121": "DenseNet121_Weights.IMAGENET1K_V1",
    "densenet169": "DenseNet169_Weights.IMAGENET1K_V1",
}

SURROGATE_NAMES: tuple[str, ...] = (TINY_NAME, *IMAGENET_WEIGHTS)

_DENSE_ALIASES = {"early": "denseblock1", "mid": "denseblock2", "late": "denseblock3", "logits": "fc"}
LAYER_ALIASES: dict[str, dict[str, str]] = {
    TINY_NAME: {"early": "block1", "mid": "block2", "late": "block3", "logits": "fc"},
    "resnet50": {"early": "layer1", "mid": "layer2", "late": "layer3", "logits": "fc"},
    "densenet121": _DENSE_ALIASES,
    "densenet169": _DENSE_ALIASES,
}


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyImageCNN(nn.Module):
    """A small image classifier: normalized images `(B, 3, H, W)` -> logits `(B, num_classes)`.

    A strided stem, three stride-2 conv blocks, average pooling to a 3 x 3 grid (so the head can tell
    where things are, at any input size) and a linear head; about 90k parameters with the default
    widths. Stage names (`stem`, `block1`..`block3`, `pool`, `fc`) are the layers an `ImageSurrogate`
    can cut at.
    """

    def __init__(
        self,
        num_classes: int = 9,
        channels: Sequence[int] = (24, 32, 64, 96),
        stem_kernel: int = 5,
        stem_stride: int = 2,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"expected 4 channel widths, got {list(channels)}")
        c0, c1, c2, c3 = (int(c) for c in channels)
        self.stem = _conv_bn_relu(3, c0, stem_kernel, stem_stride)
        self.block1 = _conv_bn_relu(c0, c1, 3, 2)
        self.block2 = _conv_bn_relu(c1, c2, 3, 2)
        self.block3 = _conv_bn_relu(c2, c3, 3, 2)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.fc = nn.Linear(c3 * 9, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        """The named stages in order (what `ImageSurrogate` cuts)."""
        return [(n, getattr(self, n)) for n in ("stem", "block1", "block2", "block3", "pool", "fc")]

    def forward(self, x: Tensor) -> Tensor:
        """Logits `(B, num_classes)` of normalized images `(B, 3, H, W)`."""
        for _, stage in self.stages():
            x = stage(x)
        return x


class ImageSurrogate(nn.Module):
    """An image model cut at `layer`: frames `(B, 3, H, W)` in [0, 1] -> features `(B, ...)`.

    Frames are resized to `input_size` on their short side (bilinear, antialiased; skipped when already
    that size) and ImageNet-normalized inside, so gradients are in [0, 1] pixel units of the caller's
    frames. Parameters are frozen and the model is in eval mode.
    """

    def __init__(
        self, name: str, stages: Sequence[tuple[str, nn.Module]], layer: str, input_size: int
    ) -> None:
        super().__init__()
        names = [n for n, _ in stages]
        aliases = LAYER_ALIASES.get(name, {})
        resolved = aliases.get(layer, layer)
        if resolved not in names:
            choices = ", ".join([*aliases, *names])
            raise BadParameterError(f"expected a layer of {name} ({choices}), got {layer!r}")
        cut = names.index(resolved) + 1
        self.name = name
        self.layer = resolved
        self.input_size = int(input_size)
        self.stages = nn.ModuleDict({n: m for n, m in stages[:cut]})
        self._mean: Tensor
        self._std: Tensor
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, frames: Tensor) -> Tensor:
        """Features at `layer` of frames `(B, 3, H, W)` in [0, 1]."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise BadParameterError(f"expected frames (B, 3, H, W), got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if min(h, w) != self.input_size:
            scale = self.input_size / min(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = (frames - self._mean) / self._std
        for stage in self.stages.values():
            x = stage(x)
        return x

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "layer": self.layer, "input_size": self.input_size}


# -- the bundled tiny surrogate -------------------------------------------------------------------


def tiny_weights_path() -> Path:
    """Where the bundled `tiny-image-cnn` weights live (whether or not they exist)."""
    return WEIGHTS_DIR / f"{TINY_NAME}.safetensors"


def load_tiny_image_cnn(path: str | Path | None = None) -> tuple[TinyImageCNN, dict[str, str]]:
    """The bundled tiny image CNN (or one saved by `scripts/train_surrogate.py` at `path`) and metadata."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path) if path is not None else tiny_weights_path()
    if not p.is_file():
        hint = "; run python scripts/train_surrogate.py" if path is None else ""
        raise BadCheckpointError(f"weights of {TINY_NAME} are missing ({p}){hint}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(p))
    except (SafetensorError, OSError) as exc:
        raise BadCheckpointError(f"cannot read {TINY_NAME} weights {p}: {exc}") from exc
    if meta.get("arch") != "TinyImageCNN":
        raise BadCheckpointError(
            f"expected arch TinyImageCNN in the metadata of {p}, got {meta.get('arch')!r}"
        )
    try:
        labels = json.loads(meta["labels"])
        channels = json.loads(meta.get("channels", "[24, 32, 64, 96]"))
        net = TinyImageCNN(
            len(labels),
            channels=channels,
            stem_kernel=int(meta.get("stem_kernel", "5")),
            stem_stride=int(meta.get("stem_stride", "2")),
        )
        net.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise BadCheckpointError(f"{p} does not hold a {TINY_NAME}: {str(exc).splitlines()[0]}") from exc
    return net.eval(), meta


# -- torchvision ImageNet surrogates ----------------------------------------------------------------


def _download(url: str, dst: Path) -> Path:
    """Fetch `url` to `dst` (the torch hub cache). Fails within seconds when offline."""
    try:
        return files.download(url, dst, sha256_prefix=name_hash_prefix(dst))
    except (OSError, ValueError) as exc:  # network, disk, or a damaged download
        raise BadCheckpointError(
            f"cannot download {url} ({exc}); offline, put the file at {dst} or pass NAME:/path/to/weights.pth"
        ) from exc


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise BadCheckpointError(f"no such weights file: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path))
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip and safetensors errors
        raise BadCheckpointError(f"cannot read weights {path}: {str(exc).splitlines()[0]}") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise BadCheckpointError(f"expected a state dict of tensors in {path}, got {type(obj).__name__}")
    return obj


# The original DenseNet checkpoints name layers `norm.1`; torchvision's modules are `norm1`.
_DENSE_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _imagenet_state_dict(name: str, path: str | None) -> dict[str, Tensor]:
    if path:
        state = _read_state_dict(Path(path).expanduser())
    else:
        from torchvision.models import get_weight

        url = get_weight(IMAGENET_WEIGHTS[name]).url
        cached = hub_cache_path(url)
        state = _read_state_dict(cached if cached.is_file() else _download(url, cached))
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if name.startswith("densenet"):
        state = {(_DENSE_KEY.sub(r"\1\2", k)): v for k, v in state.items()}
    return state


def _imagenet_stages(name: str, net: nn.Module) -> list[tuple[str, nn.Module]]:
    m = net.get_submodule
    if name == "resnet50":
        return [
            ("stem", nn.Sequential(m("conv1"), m("bn1"), m("relu"), m("maxpool"))),
            ("layer1", m("layer1")),
            ("layer2", m("layer2")),
            ("layer3", m("layer3")),
            ("layer4", m("layer4")),
            ("avgpool", nn.Sequential(m("avgpool"), nn.Flatten())),
            ("fc", m("fc")),
        ]
    stem = nn.Sequential(*(m(f"features.{k}") for k in ("conv0", "norm0", "relu0", "pool0")))
    blocks = [
        (k, m(f"features.{k}"))
        for k in ("denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3")
    ]
    return [
        ("stem", stem),
        *blocks,
        ("denseblock4", nn.Sequential(m("features.denseblock4"), m("features.norm5"), nn.ReLU())),
        ("avgpool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())),
        ("fc", m("classifier")),
    ]


def _load_imagenet(name: str, path: str | None) -> nn.Module:
    import torchvision.models as tvm

    state = _imagenet_state_dict(name, path)  # first: a missing file should fail before a slow build
    net: nn.Module = getattr(tvm, name)(weights=None)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        where = path or "the torch hub cache"
        raise BadCheckpointError(
            f"expected torchvision {name} ImageNet weights in {where}: {str(exc).splitlines()[0]}"
        ) from exc
    return net.eval()


# -- public entry points ------------------------------------------------------------------------------


def load_surrogate(
    spec: str, *, layer: str = "late", device: torch.device | str | None = None
) -> ImageSurrogate:
    """The image surrogate named by `spec` (`NAME` or `NAME:PATH`), cut at `layer`, on `device`.

    Raises `BadParameterError` for an unknown name or layer and `BadCheckpointError` when the weights
    cannot be found or read (offline and not cached, missing file, wrong architecture).
    """
    text = spec.strip()
    name, _, raw_path = text.partition(":")
    name = name.strip().lower().replace("_", "-")
    if name not in SURROGATE_NAMES:
        import difflib

        close = difflib.get_close_matches(name, SURROGATE_NAMES, n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise BadParameterError(
            f"expected a surrogate among {', '.join(SURROGATE_NAMES)}, got {spec!r}{hint}"
        )
    path = raw_path.strip() or None
    if name == TINY_NAME:
        net, meta = load_tiny_image_cnn(path)
        surrogate = ImageSurrogate(name, net.stages(), layer, int(meta.get("input_size", "112")))
    else:
        surrogate = ImageSurrogate(name, _imagenet_stages(name, _load_imagenet(name, path)), layer, 224)
    return surrogate.to(device) if device is not None else surrogate


def load_surrogates(
    specs: str, *, layer: str = "late", device: torch.device | str | None = None
) -> list[ImageSurrogate]:
    """A comma-separated list of surrogates (`"resnet50,densenet121"`), each cut at `layer`."""
    parts = [s for s in (p.strip() for p in specs.split(",")) if s]
    if not parts:
        raise BadParameterError(f"expected at least one surrogate name, got {specs!r}")
    return [load_surrogate(p, layer=layer, device=device) for p in parts]
