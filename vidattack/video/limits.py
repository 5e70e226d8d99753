"""Memory limits, checked from a file's declared sizes before any frame is decoded.

A 20 KB file can declare 4 frames of 8192x8192 (806 MB as 8-bit RGB, 3.2 GB as float32 per copy), and
an attack holds several float copies of what it attacks: without a check the first sign of trouble is
the OOM killer. `check_budget` refuses such an input with a one-line error that says how much it
would need and how to allow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vidattack.errors import BadVideoError
from vidattack.video.paths import display_path

if TYPE_CHECKING:
    from vidattack.video.info import VideoInfo

#: Default memory budget for one video in bytes (decimal GB, as printed): with the interpreter,
#: torch and a model (about 1 GB) it keeps a 24 GB machine safe with room for a second job. The CLI's
#: `--max-memory` raises it.
DEFAULT_MAX_MEMORY = 8 * 10**9

#: Float32 copies of the sampled frames an attack holds at native resolution at once: the clean input,
#: the iterate, its gradient (the backward pass through the model's resize lands at native size), the
#: Linf box's lower and upper bounds, a step/noise temporary, the best-so-far result and the quantized
#: result the template judges. PGD holds about this many; counted for every attack so that the check
#: does not depend on which one runs.
ATTACK_FLOAT_COPIES = 8

#: Bytes per sampled pixel and channel: the float32 copies above plus the uint8 clean sample and its
#: uint8 adversarial result.
ATTACK_BYTES_PER_SAMPLE = 4 * ATTACK_FLOAT_COPIES + 2

#: Decoded pictures alive in the decoder at once, at the coded bit depth: an H.264/HEVC decoder keeps
#: up to 16 reference frames, and frame threading adds one per thread.
DECODE_WINDOW_FRAMES = 24

#: Frames a video may have at most (19 hours at 30 fps); one python int of timing is kept per frame.
MAX_FRAMES = 1 << 21

#: Bytes per frame of timing kept for the whole video (a Python int in a list).
TIMING_BYTES_PER_FRAME = 40

#: A decode keeps the whole video in memory (so writing and comparing need not decode it again) when
#: it takes at most this many bytes as 8-bit RGB.
KEEP_ALL_BYTES = 256 * 2**20


def estimate_bytes(info: VideoInfo, frames_needed: int, *, keep_all_bytes: int = 0) -> int:
    """Peak bytes the video layer plus an attack will hold for `frames_needed` sampled frames of `info`.

    Sampled frames at native resolution times `ATTACK_BYTES_PER_SAMPLE` per sample, plus the decode
    window (`DECODE_WINDOW_FRAMES` coded pictures, 3 samples per pixel at the coded depth, and two RGB
    conversions), plus the whole-video copy a decode keeps when it is under `keep_all_bytes`, plus the
    timing of every frame. Model weights and activations are not counted: they depend on the model's
    input size, not the video's.
    """
    pixels = info.width * info.height
    sample_bytes = 2 if info.bit_depth > 8 else 1
    attack = frames_needed * pixels * 3 * ATTACK_BYTES_PER_SAMPLE
    window = DECODE_WINDOW_FRAMES * pixels * 3 * sample_bytes + 2 * pixels * 3
    whole = info.frames * pixels * 3
    kept = whole if whole <= keep_all_bytes else 0
    return attack + window + kept + info.frames * TIMING_BYTES_PER_FRAME


def check_budget(
    info: VideoInfo, frames_needed: int, budget_bytes: int = DEFAULT_MAX_MEMORY, *, keep_all_bytes: int = 0
) -> int:
    """Raise `BadVideoError` when attacking `frames_needed` frames of `info` needs more than
    `budget_bytes` (see `estimate_bytes`); return the estimate otherwise.

    The message names the path once and says how to allow it, e.g. "clip.mp4 needs about 27.5 GB to
    attack 4 frames of 8192x8192 (budget 8.0 GB; raise it with --max-memory)".
    """
    need = estimate_bytes(info, frames_needed, keep_all_bytes=keep_all_bytes)
    if need > budget_bytes:
        raise BadVideoError(
            f"{display_path(info.path)} needs about {format_bytes(need)} to attack {frames_needed} frames "
            f"of {info.width}x{info.height} (budget {format_bytes(budget_bytes)}; raise it with --max-memory)"
        )
    return need


def format_bytes(n: int) -> str:
    """`n` bytes in decimal units with one decimal: "806.0 MB", "12.9 GB"."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def parse_bytes(text: str) -> int:
    """Parse a size such as "8GB", "12.5 GB", "800MB", "2GiB" or a plain number of bytes (for
    `--max-memory`); `ValueError` with an "expected ..." message otherwise."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units |= {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
    units |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    s = text.strip().lower().replace(" ", "").replace("_", "")
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or not value > 0 or value == float("inf"):
        raise ValueError(f"expected a memory size such as 8GB, 800MB or 2GiB, got {text!r}")
    return int(value * units[unit])
