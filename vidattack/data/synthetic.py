"""A seeded synthetic action data set whose classes are defined by motion alone.

Each clip shows one textured object (disc, square or triangle, with an off-centre spot that shows
which way it faces) on a smooth textured background with fresh sensor-like noise in every frame. The class is what the object *does* over time: move in one of
four directions, rotate either way, grow, shrink, flash, or stay still. Position, size, orientation,
colours and textures are drawn from the same ranges for every class, so a single frame does not tell
the classes apart and a model has to use time. The bundled models are trained on it and the tests
use it, so nothing has to be downloaded.

Everything is drawn from a `torch.Generator` seeded per clip: the same seed gives the same clip, bit
for bit, on any machine with the same torch version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

CLASSES: tuple[str, ...] = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "rotate_cw",
    "rotate_ccw",
    "zoom_in",
    "zoom_out",
    "flash",
    "still",
)

# Kinematics, per frame, in pixels of a 112-pixel frame (scaled with `size`). The ranges are wide
# enough that speed is no cue and narrow enough that motion is visible after 4x downsampling.
_SPEED = (1.6, 3.6)  # translation, px/frame
_SPIN = (20.0, 40.0)  # rotation, degrees/frame; below 45 so a square's symmetry cannot alias it
_ZOOM = (1.7, 2.4)  # total size ratio between first and last frame
_RADIUS = (12.0, 30.0)  # object radius; zooming objects stay inside this range in every frame
_MARGIN = 20.0  # object centres stay this far from the border
_FLASH = (0.2, 0.35)  # brightness swing of a flashing object, added to and taken from its colour
# Per-frame pixel noise, std on the [0, 1] scale. Kept below the motion signal: at 0.06 the frame
# differences are mostly noise and the models take many times longer to find the motion.
_NOISE = (0.005, 0.03)
SPOT_OFFSET = 0.5  # distance of the spot's centre from the object's, in object radii
_SPOT_RADIUS = 0.22


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi)."""
    return int(torch.randint(lo, hi, (), generator=g))


def _smooth_noise(g: torch.Generator, size: int) -> Tensor:
    """A smooth random texture `(size, size)` in [0, 1]: two octaves of upsampled noise."""
    coarse = torch.rand(1, 1, _randint(g, 3, 8), _randint(g, 3, 8), generator=g)
    fine = torch.rand(1, 1, _randint(g, 10, 24), _randint(g, 10, 24), generator=g)
    tex = 0.65 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    tex = tex + 0.35 * F.interpolate(fine, size=(size, size), mode="bicubic", align_corners=False)
    tex = tex[0, 0]
    return (tex - tex.min()) / (tex.max() - tex.min()).clamp_min(1e-6)


def _label_index(label: int | str) -> int:
    if isinstance(label, str):
        if label not in CLASSES:
            raise ValueError(f"expected one of {', '.join(CLASSES)}, got {label!r}")
        return CLASSES.index(label)
    if isinstance(label, bool) or not 0 <= int(label) < len(CLASSES):
        raise ValueError(f"expected a class index in [0, {len(CLASSES) - 1}], got {label!r}")
    return int(label)


def make_clip(label: int | str, *, seed: int, frames: int = 16, size: int = 112) -> Tensor:
    """One synthetic clip of class `label` (an index into `CLASSES` or its name).

    Returns RGB frames `(frames, size, size, 3)` as uint8. The same `(label, seed, frames, size)`
    always gives the same clip; the same seed with another label gives the same object and background
    doing something else.
    """
    return render_clip(label, seed=seed, frames=frames, size=size)[0]


def render_clip(label: int | str, *, seed: int, frames: int = 16, size: int = 112) -> tuple[Tensor, Tensor]:
    """`make_clip` together with the object's true state in every frame.

    Returns the clip `(frames, size, size, 3)` uint8 and the state `(frames, 5)` float32: centre x,
    centre y, radius (pixels), angle (the direction of the object's spot from its centre, radians
    clockwise on screen from the x axis) and brightness offset. Training can use the state as an
    auxiliary target; tests can check the motion against it.
    """
    cls = _label_index(label)
    if frames < 2:
        raise ValueError(f"expected at least 2 frames (motion needs time), got {frames}")
    if size < 32:
        raise ValueError(f"expected a frame size of at least 32 pixels, got {size}")
    g = torch.Generator().manual_seed(int(seed))
    # The draws happen in this order (look, then motion, then the pixel noise): changing it changes
    # every clip of every synthetic data set.
    look = _draw_look(g, size)
    state = _draw_motion(g, CLASSES[cls], frames, size)  # (T, 5)
    video = _paint(look, state, size)  # (T, H, W, 3) in [0, 1]
    video.add_(torch.randn(video.shape, generator=g).mul_(look.noise_std))
    return video.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8), state


@dataclass(frozen=True)
class _Look:
    """How one clip looks, whatever its class does: background, the object's shape, colours and
    texture, its spot, and the strength of the pixel noise."""

    background: Tensor  # (H, W, 3)
    obj_colours: Tensor  # (2, 3)
    spot_colour: Tensor  # (3,)
    shape: int  # disc, square, triangle
    stripe_angle: float
    stripe_freq: float
    stripe_phase: float
    stripe_weight: float
    obj_noise: Tensor  # (1, 1, 6, 6)
    noise_std: float


def _draw_look(g: torch.Generator, size: int) -> _Look:
    # Background: two random colours blended by a smooth texture.
    bg_colours = torch.rand(2, 3, generator=g)
    bg_tex = _smooth_noise(g, size)  # (H, W)
    background = bg_colours[0] + (bg_colours[1] - bg_colours[0]) * bg_tex[..., None]  # (H, W, 3)

    # Object appearance. Its colours are kept away from the background's mean colour so the object
    # is always visible (otherwise some clips carry no signal and cap the attainable accuracy).
    bg_mean = background.mean(dim=(0, 1))
    # Its texture needs contrast too: rotation shows only through the texture of a disc.
    obj_colours = torch.rand(2, 3, generator=g)
    for _ in range(64):
        visible = torch.linalg.vector_norm(obj_colours.mean(0) - bg_mean) >= 0.35
        if visible and torch.linalg.vector_norm(obj_colours[1] - obj_colours[0]) >= 0.3:
            break
        obj_colours = torch.rand(2, 3, generator=g)
    # The spot makes a turning disc visible to a per-frame CNN: stripes alone leave a CNN+RNN guessing
    # the direction of rotation.
    spot_colour = torch.rand(3, generator=g)
    for _ in range(64):
        if torch.linalg.vector_norm(obj_colours - spot_colour, dim=1).min() >= 0.45:
            break
        spot_colour = torch.rand(3, generator=g)
    return _Look(
        background=background,
        obj_colours=obj_colours,
        spot_colour=spot_colour,
        shape=_randint(g, 0, 3),
        stripe_angle=_uniform(g, 0.0, math.pi),
        stripe_freq=_uniform(g, 4.0, 9.0),
        stripe_phase=_uniform(g, 0.0, 2 * math.pi),
        stripe_weight=_uniform(g, 0.4, 0.8),
        obj_noise=torch.rand(1, 1, 6, 6, generator=g),
        noise_std=_uniform(g, *_NOISE),
    )


def _draw_motion(g: torch.Generator, name: str, frames: int, size: int) -> Tensor:
    """The object's state `(frames, 5)` (centre x, centre y, radius, angle, brightness offset) as class
    `name` moves it."""
    px = size / 112.0  # all pixel constants are for 112-pixel frames
    # Centred on the middle frame so the middle frame's state has the same distribution for every class.
    t = torch.arange(frames, dtype=torch.float32) - (frames - 1) / 2  # (T,)
    span = float(frames - 1)
    radius = _uniform(g, *_RADIUS) * px
    angle0 = _uniform(g, 0.0, 2 * math.pi)
    cx = torch.full((frames,), _uniform(g, _MARGIN * px, size - _MARGIN * px))
    cy = torch.full((frames,), _uniform(g, _MARGIN * px, size - _MARGIN * px))
    angle = torch.full((frames,), angle0)
    radii = torch.full((frames,), radius)
    glow = torch.zeros(frames)
    if name.startswith("move_"):
        speed = _uniform(g, *_SPEED) * px
        # Keep the whole path inside the margins: slow down if the clip is too long for the frame.
        speed = min(speed, (size - 2 * _MARGIN * px) / span)
        half = speed * span / 2
        mid = _uniform(g, _MARGIN * px + half, size - _MARGIN * px - half)
        sign = -1.0 if name in ("move_left", "move_up") else 1.0
        path = mid + sign * speed * t
        if name in ("move_left", "move_right"):
            cx = path
        else:
            cy = path  # image rows grow downwards, so "up" is decreasing y
    elif name.startswith("rotate_"):
        spin = math.radians(_uniform(g, *_SPIN))
        # With y pointing down, a growing angle turns clockwise on screen.
        angle = angle0 + (spin if name == "rotate_cw" else -spin) * t
    elif name.startswith("zoom_"):
        ratio = min(_uniform(g, *_ZOOM) ** (span / 15), _RADIUS[1] / _RADIUS[0])
        mid_radius = _uniform(g, _RADIUS[0] * math.sqrt(ratio), _RADIUS[1] / math.sqrt(ratio)) * px
        rate = math.log(ratio) / span
        radii = mid_radius * torch.exp((rate if name == "zoom_in" else -rate) * t)
    elif name == "flash":
        period = _randint(g, 3, 7)
        phase = _randint(g, 0, period)
        swing = _uniform(g, *_FLASH)
        on = ((torch.arange(frames) + phase) % period) < (period + 1) // 2
        glow = torch.where(on, swing, -swing)
    # "still" keeps the constant state.
    return torch.stack([cx, cy, radii, angle, glow], dim=1)  # (T, 5)


def _paint(look: _Look, state: Tensor, size: int) -> Tensor:
    """The frames `(T, H, W, 3)` in [0, 1] (before noise) of the object `look` in `state` `(T, 5)`."""
    frames = state.shape[0]
    cx, cy, radii, angle, glow = state.unbind(1)
    # Object coordinates of every pixel in every frame: u = R(-angle) (p - c) / radius.
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dx = coords.view(1, 1, size) - cx.view(frames, 1, 1)  # (T, 1, W)
    dy = coords.view(1, size, 1) - cy.view(frames, 1, 1)  # (T, H, 1)
    cos, sin = torch.cos(angle).view(frames, 1, 1), torch.sin(angle).view(frames, 1, 1)
    r = radii.view(frames, 1, 1)
    ux = (cos * dx + sin * dy) / r  # (T, H, W)
    uy = (-sin * dx + cos * dy) / r

    # Signed distance to the outline in object units, then in pixels for an anti-aliased edge.
    if look.shape == 0:
        dist = torch.sqrt(ux * ux + uy * uy) - 1.0
    elif look.shape == 1:
        dist = torch.maximum(ux.abs(), uy.abs()) - 0.82
    else:
        normals = [(math.cos(a), math.sin(a)) for a in (math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
        dist = torch.stack([nx * ux + ny * uy for nx, ny in normals]).amax(0) - 0.65
    alpha = (0.5 - dist * r).clamp_(0.0, 1.0)[..., None]  # (T, H, W, 1)

    # Texture painted on the object, so it moves, turns and scales with it.
    stripes = 0.5 + 0.5 * torch.sin(
        look.stripe_freq * (ux * math.cos(look.stripe_angle) + uy * math.sin(look.stripe_angle))
        + look.stripe_phase
    )
    grid = torch.stack([ux, uy], dim=-1) / 1.3  # (T, H, W, 2); the object fits in [-1, 1]
    blotches = F.grid_sample(
        look.obj_noise.expand(frames, 1, 6, 6),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[:, 0]  # (T, H, W)
    w = look.stripe_weight
    tex = (w * stripes + (1 - w) * blotches)[..., None]  # (T, H, W, 1)
    # The flash is added rather than multiplied: a dark object must flash as visibly as a bright one.
    # The spot sits on the object's x axis, so it points along the object's angle.
    spot_dist = torch.sqrt((ux - SPOT_OFFSET) ** 2 + uy * uy) - _SPOT_RADIUS
    spot = (0.5 - spot_dist * r).clamp_(0.0, 1.0)[..., None]  # (T, H, W, 1)
    obj = look.obj_colours
    base = obj[0] + glow.view(frames, 1, 1, 1)  # (T, 1, 1, 3)
    colour = torch.addcmul(base, tex, obj[1] - obj[0])  # (T, H, W, 3)
    colour = torch.lerp(colour, look.spot_colour + glow.view(frames, 1, 1, 1), spot).clamp_(0.0, 1.0)
    return colour.sub_(look.background).mul_(alpha).add_(look.background)  # alpha-blended


def make_dataset(n_per_class: int, *, seed: int, frames: int = 16, size: int = 112) -> tuple[Tensor, Tensor]:
    """A balanced data set: `n_per_class` clips of every class in `CLASSES`.

    Returns clips `(N, frames, size, size, 3)` uint8 and labels `(N,)` int64, with the classes
    interleaved (`labels[i] == i % len(CLASSES)`) so any prefix is nearly balanced. Each clip's seed
    is drawn from `seed`, so two data sets with different seeds share no clip in practice.
    """
    clips, labels, _ = make_dataset_with_state(n_per_class, seed=seed, frames=frames, size=size)
    return clips, labels


def make_dataset_with_state(
    n_per_class: int, *, seed: int, frames: int = 16, size: int = 112
) -> tuple[Tensor, Tensor, Tensor]:
    """`make_dataset` plus each clip's per-frame object state `(N, frames, 5)` (see `render_clip`)."""
    if n_per_class < 1:
        raise ValueError(f"expected at least one clip per class, got {n_per_class}")
    n = n_per_class * len(CLASSES)
    clip_seeds = torch.randint(0, 2**62, (n,), generator=torch.Generator().manual_seed(int(seed)))
    clips = torch.empty(n, frames, size, size, 3, dtype=torch.uint8)
    states = torch.empty(n, frames, 5)
    labels = torch.arange(n, dtype=torch.int64) % len(CLASSES)
    for i in range(n):
        clips[i], states[i] = render_clip(int(labels[i]), seed=int(clip_seeds[i]), frames=frames, size=size)
    return clips, labels, states
