"""Starting points for attacks that begin inside the target class (targeted V-BAD), read from files.

Attacks never open files: an attack that wants a start names it by a string parameter (`target_video`,
so `--set target_video=PATH` works on the command line), and the pipeline calls `starting_points` to
decode and sample it, then hands the tensor to the attack template (`starting_points=`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from vidattack.errors import BadVideoError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.models.view import FramePlan

__all__ = ["sample_target_video", "starting_points"]


def starting_points(attack: Attack, plan: FramePlan, x: Tensor) -> Tensor | None:
    """The start `(1, T, 3, H, W)` for attacking the sampled video `x` `(1, T, 3, H, W)`, or None.

    Returns the attack's `target_video` (when it has a non-empty one) sampled to the frames `plan` took
    from the attacked video (see `sample_target_video`), on x's device and in x's dtype.
    """
    # V-BAD names its start target_video; hsja start_video (a video of another class)
    path = str(getattr(attack, "target_video", "") or getattr(attack, "start_video", "") or "")
    if not path:
        return None
    height, width = int(x.shape[-2]), int(x.shape[-1])
    frames = sample_target_video(path, plan, (height, width))
    return frames.to(device=x.device, dtype=x.dtype).unsqueeze(0)


def sample_target_video(path: str | Path, plan: FramePlan, size: tuple[int, int]) -> Tensor:
    """The frames `(T, 3, H, W)` in [0, 1] of the video at `path`, resampled to an attacked video's frames.

    Frame f of the attacked `plan.num_frames`-long video (one of `plan.frame_ids`) takes the target
    video's frame at the same relative position, `f (F' - 1) / (num_frames - 1)` rounded half up, so a
    target of another length still lines up with the attacked frames; frames are resized to `size`
    (bilinear, antialiased; the aspect ratio follows the attacked video).
    """
    from vidattack.video import load_video

    try:
        frames = load_video(path).frames  # (F', H', W', 3) uint8
    except BadVideoError as e:
        raise BadVideoError(f"target_video: {e}") from None
    count = int(frames.shape[0])
    scale = (count - 1) / max(plan.num_frames - 1, 1)
    pos = torch.tensor([min(count - 1, int(f * scale + 0.5)) for f in plan.frame_ids], dtype=torch.long)
    out = frames.index_select(0, pos).permute(0, 3, 1, 2).float().div(255.0)  # (T, 3, H', W')
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    return out
