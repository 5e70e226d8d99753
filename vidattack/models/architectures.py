"""The torchvision video architectures vidattack can load, with the preprocessing each expects.

Each entry says how to build the network (`weights=None`, any number of classes), where its classifier
head is (so a checkpoint's class count can be read from the head's weight), which preprocessing its
Kinetics-400 weights were evaluated with, and which torchvision weights enum holds those weights.

Preprocessing follows the transforms attached to torchvision's weights (`weights.transforms()`; a test
checks they agree) and the evaluation in each weights' docs, with two deliberate simplifications:

- `num_clips=5` for every architecture. torchvision's reference scores a video by 5 clips for the
  3D ResNets and MViT; S3D was scored by 1 clip of 128 frames and Video Swin by 12 clips of 32. Five
  16-frame clips (32 for Swin) cover a typical 10 s video while keeping an attack's cost (one forward
  and backward per clip per step) bounded.
- `frame_stride=1`. The references resample videos to 15 fps (7.5 fps for MViT) first; vidattack works
  on the file's own frames, so the model sees consecutive frames whatever the frame rate.

`resize` is exact `(height, width)` where torchvision's transform gives two numbers (3D ResNets: 128 x
171; S3D: 256 x 256) and the short side where it gives one (MViT, Swin: 256).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import torch
from torch import nn

from vidattack.errors import BadCheckpointError
from vidattack.models.view import Preprocess

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

# Kinetics statistics used by the 3D ResNets and S3D (torchvision's video reference recipe).
_KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
_KINETICS_STD = (0.22803, 0.22145, 0.216989)
#: ImageNet's per-channel statistics (RGB, [0, 1] pixels): the normalisation of Video Swin's weights and
#: of every image surrogate (`vidattack.models.surrogates`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESNET_PRE = Preprocess(
    clip_len=16, num_clips=5, resize=(128, 171), crop=112, mean=_KINETICS_MEAN, std=_KINETICS_STD
)
_S3D_PRE = Preprocess(
    clip_len=16, num_clips=5, resize=(256, 256), crop=224, mean=_KINETICS_MEAN, std=_KINETICS_STD
)
# MViT's positional embeddings fix its input at exactly 16 x 224 x 224.
_MVIT_PRE = Preprocess(clip_len=16, num_clips=5, resize=256, crop=224, mean=(0.45,) * 3, std=(0.225,) * 3)
_SWIN_PRE = Preprocess(clip_len=32, num_clips=5, resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)


@dataclass(frozen=True)
class Architecture:
    """One torchvision video architecture.

    `head` is the dotted name of the final classifier layer (`fc`, `classifier.1`, `head.1`, `head`):
    its weight's first dimension is the number of classes. `weights` names the torchvision enum member
    of the pretrained Kinetics-400 weights. `module_class` is the class name of the built network, used
    to recognise a pickled whole module.
    """

    name: str
    preprocess: Preprocess
    head: str
    weights: str
    module_class: str
    description: str

    @property
    def head_weight_key(self) -> str:
        return f"{self.head}.weight"

    def build(self, num_classes: int = 400) -> nn.Module:
        """A randomly initialised network with `num_classes` outputs (never downloads anything)."""
        import torchvision.models.video as video_models

        if num_classes < 1:
            raise BadCheckpointError(f"expected at least one class for {self.name}, got {num_classes}")
        builder = getattr(video_models, self.name)
        net: nn.Module = builder(weights=None, num_classes=num_classes)
        return net

    def pretrained_weights(self) -> WeightsEnum:
        """The torchvision weights enum member (its `url`, `meta`); creating it downloads nothing."""
        from torchvision.models import get_weight

        return get_weight(self.weights)

    def kinetics_labels(self) -> list[str]:
        """The 400 Kinetics class names, from the weights' metadata shipped inside torchvision."""
        return list(self.pretrained_weights().meta["categories"])

    def num_classes_in(self, state_dict: dict[str, torch.Tensor]) -> int | None:
        """The class count of a state dict (with torchvision key names), read from the head's weight."""
        weight = state_dict.get(self.head_weight_key)
        if weight is None or weight.dim() < 2:
            return None
        return int(weight.shape[0])

    def head_module(self, net: nn.Module) -> nn.Module:
        """The final classifier layer of a network built by `build` (a Linear, or S3D's 1x1x1 Conv3d)."""
        return net.get_submodule(self.head)

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every state-dict key and shape of the network with 400 classes, without allocating weights."""
        return dict(_expected_shapes(self.name))


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            "r3d_18", _RESNET_PRE, "fc", "R3D_18_Weights.KINETICS400_V1", "VideoResNet", "3D ResNet-18"
        ),
        Architecture(
            "mc3_18", _RESNET_PRE, "fc", "MC3_18_Weights.KINETICS400_V1", "VideoResNet", "Mixed Conv 18"
        ),
        Architecture(
            "r2plus1d_18",
            _RESNET_PRE,
            "fc",
            "R2Plus1D_18_Weights.KINETICS400_V1",
            "VideoResNet",
            "R(2+1)D-18",
        ),
        Architecture("s3d", _S3D_PRE, "classifier.1", "S3D_Weights.KINETICS400_V1", "S3D", "S3D"),
        Architecture(
            "mvit_v1_b", _MVIT_PRE, "head.1", "MViT_V1_B_Weights.KINETICS400_V1", "MViT", "MViT V1-B"
        ),
        Architecture(
            "mvit_v2_s", _MVIT_PRE, "head.1", "MViT_V2_S_Weights.KINETICS400_V1", "MViT", "MViT V2-S"
        ),
        Architecture(
            "swin3d_t", _SWIN_PRE, "head", "Swin3D_T_Weights.KINETICS400_V1", "SwinTransformer3d", "Swin3D-T"
        ),
        Architecture(
            "swin3d_s", _SWIN_PRE, "head", "Swin3D_S_Weights.KINETICS400_V1", "SwinTransformer3d", "Swin3D-S"
        ),
        Architecture(
            "swin3d_b", _SWIN_PRE, "head", "Swin3D_B_Weights.KINETICS400_V1", "SwinTransformer3d", "Swin3D-B"
        ),
    )
}

# A pickled module tells its class, not its variant; variants of one class share preprocessing, so the
# first architecture of each class stands for all of them.
BY_MODULE_CLASS: dict[str, Architecture] = {}
for _arch in ARCHITECTURES.values():
    BY_MODULE_CLASS.setdefault(_arch.module_class, _arch)


def get_architecture(name: str) -> Architecture:
    """The architecture called `name` (case and `-`/`_` insensitive), or an error suggesting close names."""
    key = name.strip().lower().replace("-", "_")
    arch = ARCHITECTURES.get(key)
    if arch is not None:
        return arch
    close = difflib.get_close_matches(key, list(ARCHITECTURES), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise BadCheckpointError(
        f"unknown architecture {name!r}{hint}; expected one of {', '.join(ARCHITECTURES)}"
    )


@cache
def _expected_shapes(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    # The meta device builds the module graph without allocating or initialising weights (~30 ms),
    # so matching a checkpoint against every architecture stays cheap.
    with torch.device("meta"):
        net = ARCHITECTURES[name].build(400)
    return tuple((k, tuple(v.shape)) for k, v in net.state_dict().items())
