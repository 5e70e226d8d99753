"""Threat models (`norms`: the sets an attack may reach) and regions (`masks`: where it may act).

The names other modules use are re-exported here: `from vidattack.threat import LinfBall, FrameSpec`.
"""

from vidattack.threat.masks import (
    ALL_FRAMES,
    Border,
    FrameSelection,
    FrameSpec,
    Pixels,
    Rectangle,
    Region,
    border_width_for_ratio,
    frame_mask_5d,
    frames_mask,
    rectangles,
)
from vidattack.threat.norms import (
    LEVELS,
    L2Ball,
    LinfBall,
    RatioL2,
    RatioLinf,
    ThreatModel,
    Unbounded,
    apply_mask,
    log_ratio,
    per_sample_norm,
    ratio,
    round_toward,
)

__all__ = [
    "ALL_FRAMES",
    "LEVELS",
    "Border",
    "FrameSelection",
    "FrameSpec",
    "L2Ball",
    "LinfBall",
    "Pixels",
    "RatioL2",
    "RatioLinf",
    "Rectangle",
    "Region",
    "ThreatModel",
    "Unbounded",
    "apply_mask",
    "border_width_for_ratio",
    "frame_mask_5d",
    "frames_mask",
    "log_ratio",
    "per_sample_norm",
    "ratio",
    "rectangles",
    "round_toward",
]
