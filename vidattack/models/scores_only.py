"""The small interface of a network that answers scores but no gradients.

An ONNX session (and any other model that runs outside torch's autograd) is wrapped as a
`ScoresOnlyNet`: an `nn.Module` whose `forward` maps a clip batch to logits `(B, K)` like any network a
`ModelView` holds, so the view's preprocessing, clip sampling, batching and the black-box attacks'
`QueryModel` work on it unchanged. It declares `capabilities = Capability.SCORES`, which
`capabilities.model_offers` reads through the view, so a white-box attack is refused before decoding;
and should a gradient be asked for anyway, `forward` stops with a one-line error instead of an autograd
traceback deep inside an attack.

A subclass writes only `scores`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from vidattack.errors import BadParameterError
from vidattack.models.capabilities import Capability


class ScoresOnlyNet(nn.Module):
    """A network answered outside torch: clips in the view's layout -> logits `(B, K)`, no gradients.

    Subclasses implement `scores(clips)` on a detached tensor; `describe` names the model in errors.
    It holds one empty parameter, only so that `.to(device)` and the views that read the network's
    device from its parameters put the preprocessing where the frames are; the session itself runs
    where it was opened, and `forward` returns its answer on the device of its input.
    """

    capabilities: ClassVar[Capability] = Capability.SCORES

    def __init__(self, describe: str) -> None:
        super().__init__()
        self.describe = describe
        self._device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def scores(self, clips: Tensor) -> Tensor:
        """Logits `(B, K)` (float32, any device) for the clip batch `clips` (detached, on CPU)."""
        raise NotImplementedError

    def forward(self, clips: Tensor) -> Tensor:
        if torch.is_grad_enabled() and clips.requires_grad:
            raise BadParameterError(
                f"{self.describe} gives {self.capabilities.describe()}: a gradient of it was asked for "
                "(use a black-box attack, or a white-box one on a surrogate)"
            )
        with torch.no_grad():
            return self.scores(clips.detach().cpu()).to(clips.device)
