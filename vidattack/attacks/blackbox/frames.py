"""The frames a black-box attack may touch (its `frames` hyperparameter) and the search space they leave.

A black-box attack that may change only some frames searches only over those: its partition covers the
selected frames (`Partition.frames`), so NES samples and HSJA directions spend no dimension, and no
query, on frames the mask would zero anyway. The default `all` builds no mask and draws nothing, so an
attack run with it is exactly the attack without the parameter.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from vidattack.attacks.context import AttackContext
from vidattack.threat import FrameSpec, frame_mask_5d

__all__ = ["check_frames", "embed_frames", "frame_mask", "reported", "selected_frames"]


def reported(params: dict[str, Any]) -> dict[str, Any]:
    """An attack's hyperparameters as reported and keyed: `frames` only when it names frames, so the
    job keys (and reports) of runs made before the parameter existed stay as they were."""
    return {k: v for k, v in params.items() if not (k == "frames" and v == "all")}


def check_frames(ctx: AttackContext, spec: FrameSpec | str) -> None:
    """Refuse frames the video cannot give before the first query is sent (each query may cost money):
    frame numbers beyond it, more frames than it has, none that the model samples. Draws nothing."""
    spec = FrameSpec.parse(spec)
    if spec.kind == "random":
        spec.check(ctx.num_frames)  # which frames is drawn later, in `frame_mask`
    elif spec.kind != "all":
        ctx.select_frames(spec)  # deterministic: the same choice `frame_mask` makes again


def frame_mask(ctx: AttackContext, spec: FrameSpec | str, x: Tensor) -> Tensor | None:
    """The `(1, T, 1, 1, 1)` bool mask of the sampled frames `spec` allows for videos like `x`, or None
    when it allows every frame. A selection is recorded under `ctx.info["frames"]`; `all` records
    nothing and draws nothing from the generators (the attack's trajectory stays today's)."""
    spec = FrameSpec.parse(spec)
    if spec.kind == "all":
        return None
    chosen = ctx.select_frames(spec)  # raises for frame numbers beyond the video, or none sampled
    return None if bool(chosen.all()) else frame_mask_5d(chosen, x)


def selected_frames(mask: Tensor | None) -> Tensor | None:
    """Positions `(T_sel,)` of the frames a `(1, T, 1, 1, 1)` frame mask allows (None: every frame)."""
    if mask is None:
        return None
    return mask.reshape(-1).nonzero().reshape(-1)


def embed_frames(values: Tensor, frames: Tensor, num_frames: int) -> Tensor:
    """`values` `(P, T_sel, ...)` placed at `frames` of `num_frames` frames, exact zeros elsewhere:
    `(P, T, ...)`."""
    out = values.new_zeros((values.shape[0], num_frames, *values.shape[2:]))
    out[:, frames.to(values.device)] = values
    return out
