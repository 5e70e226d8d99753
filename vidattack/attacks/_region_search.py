"""Choosing where a region attack acts: rectangle search, salient pixels, the frames it may touch.

Shared by the additive region attacks (`vidattack.attacks.regions`) and their multiplicative MultAV
versions (`vidattack.attacks.multav`). Each helper returns a bool mask `(N, T, 1, H, W)` (True = may
change) and writes what it chose into `ctx.info["region"]`, so the report says where the attack acted.

The rectangle search follows the original ROA (Wu et al., Defending Against Physically Realizable
Attacks on Image Classification, ICLR 2020): put a probe (their gray rectangle) at every position of a
grid and keep the position with the largest loss ("exhaustive"), or rank windows by the summed squared
gradient inside them and evaluate only the top few ("gradient"). The MultAV authors' video code drew a
random position per frame instead ("random").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.attacks.base import AttackContext
from vidattack.attacks.params import param
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.regions import border_mask, pixel_mask, rectangles
from vidattack.threat import frame_mask_5d, frames_mask

Search = Literal["exhaustive", "gradient", "random"]
Placement = Literal["shared", "per-frame"]
PixelSelection = Literal["gradient", "random"]

# Candidate videos evaluated per forward pass are capped by their total size, so a search over a
# 1080p video does not allocate gigabytes at once (about 64 MB of float32 per batch).
_CANDIDATE_ELEMENTS = 1 << 24


def frame_selection(spec: str, x: Tensor, ctx: AttackContext) -> Tensor:
    """The sampled frames an attack may touch, `(T,)` bool, from a `frames` parameter (`all`, `K`,
    `random:K`, `0,3,7`; video frame numbers). Records the chosen frame numbers in `ctx.info`."""
    chosen = frames_mask(spec, ctx.frame_ids, ctx.num_frames, ctx.generator).to(x.device)
    if not bool(chosen.any()):
        raise BadParameterError(
            f"expected frames the model samples ({_short(ctx.frame_ids)}), got {spec!r}, none of them sampled"
        )
    ctx.info["frames"] = [f for f, keep in zip(ctx.frame_ids, chosen.tolist(), strict=True) if keep]
    return chosen


def _short(ids: tuple[int, ...]) -> str:
    return ", ".join(map(str, ids)) if len(ids) <= 8 else f"{ids[0]}..{ids[-1]}"


def grid_positions(size: int, window: int, stride: int) -> list[int]:
    """Window starts `0, stride, 2 stride, ...` along one axis, plus the last start so the far edge is
    reachable."""
    last = size - window
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def check_rectangle_fits(x: Tensor, height: int, width: int) -> None:
    """Raise a clear error when a `height x width` rectangle cannot fit in the video's frames."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise BadParameterError(
            f"expected a rectangle that fits in the {h} x {w} frames, got {height} x {width}; "
            "set height and width in the video's own pixels"
        )


def _window_masks(
    tops: Tensor, lefts: Tensor, height: int, width: int, frames: Tensor, h: int, w: int
) -> Tensor:
    """`(B, T, 1, H, W)` masks of rectangles at `tops`/`lefts` `(B, T)`, on the selected frames only."""
    m = rectangles(tops, lefts, height, width, h, w)  # (B, T, H, W)
    return (m & frames.view(1, -1, 1, 1)).unsqueeze(2)


def _objective_of_candidates(
    model: nn.Module,
    x_n: Tensor,
    fill_n: Tensor,
    criterion_n: Criterion,
    cand_top: Tensor,
    cand_left: Tensor,
    size: tuple[int, int],
    frames: Tensor,
) -> Tensor:
    """The criterion's objective for `x_n` `(1, T, C, H, W)` with `fill_n` pasted into each candidate
    rectangle (`cand_top`/`cand_left` `(B, T)`, on `frames` only), `(B,)`."""
    per_batch = max(1, _CANDIDATE_ELEMENTS // x_n.numel())
    h, w = x_n.shape[-2:]
    values = []
    with torch.no_grad():
        for i in range(0, cand_top.shape[0], per_batch):
            tops, lefts = cand_top[i : i + per_batch], cand_left[i : i + per_batch]
            masks = _window_masks(tops, lefts, size[0], size[1], frames, h, w)
            candidates = torch.where(masks, fill_n, x_n)  # (B, T, C, H, W)
            labels = criterion_n.labels.expand(tops.shape[0])
            values.append(dataclasses.replace(criterion_n, labels=labels).objective(model(candidates)))
    return torch.cat(values)


def choose_rectangle(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    ctx: AttackContext,
    *,
    fill: Tensor,
    sensitivity: Tensor | None,
    height: int,
    width: int,
    search: Search,
    stride: int,
    top_k: int,
    placement: Placement,
    frames: Tensor,
) -> Tensor:
    """Where to put a `height x width` rectangle in each video; returns its mask `(N, T, 1, H, W)`.

    `fill` `(N, T, C, H, W)` is the probe: what the rectangle's pixels become when a position is
    evaluated (a gray 0.5 for additive ROA, the first multiplicative step for MultAV-ROA).
    `sensitivity` `(N, T, C, H, W)` is a per-pixel score, needed by the gradient search (squared
    gradient). `frames` `(T,)` bool: frames that carry the rectangle (and where it is searched).
    `placement="shared"` puts the rectangle at one position on every frame; `"per-frame"` chooses each
    frame's position on its own (exhaustive: the probe on that frame alone; gradient: candidate j takes
    every frame's j-th best window).
    """
    check_rectangle_fits(x, height, width)
    n, t, _, h, w = x.shape
    device = x.device
    size = (height, width)
    ys = torch.tensor(grid_positions(h, height, stride), device=device)
    xs = torch.tensor(grid_positions(w, width, stride), device=device)
    grid_top = ys.repeat_interleave(len(xs))  # (P,)
    grid_left = xs.repeat(len(ys))  # (P,)
    num_pos = grid_top.numel()
    active = frames.nonzero().flatten()  # positions in the sampled frames that carry a rectangle
    tops = torch.zeros(n, t, dtype=torch.long, device=device)
    lefts = torch.zeros(n, t, dtype=torch.long, device=device)
    evaluated = 0
    for i in range(n):
        crit_i = dataclasses.replace(criterion, labels=criterion.labels[i : i + 1].to(device))
        if search == "random":
            count = 1 if placement == "shared" else t
            pick = torch.randint(num_pos, (count,), generator=ctx.generator, device=device).expand(t)
            tops[i], lefts[i] = grid_top[pick], grid_left[pick]
            continue
        if search == "exhaustive":
            if placement == "shared":
                cand_top = grid_top.view(-1, 1).expand(num_pos, t)  # (P, T)
                cand_left = grid_left.view(-1, 1).expand(num_pos, t)
                values = _objective_of_candidates(
                    model, x[i : i + 1], fill[i : i + 1], crit_i, cand_top, cand_left, size, frames
                )
                best = int(values.argmax())
                evaluated += num_pos
                tops[i], lefts[i] = grid_top[best], grid_left[best]
            else:
                # one frame at a time: the probe on frame f alone, every grid position
                for f in active.tolist():
                    only_f = torch.zeros_like(frames)
                    only_f[f] = True
                    cand_top = grid_top.view(-1, 1).expand(num_pos, t)
                    cand_left = grid_left.view(-1, 1).expand(num_pos, t)
                    values = _objective_of_candidates(
                        model, x[i : i + 1], fill[i : i + 1], crit_i, cand_top, cand_left, size, only_f
                    )
                    evaluated += num_pos
                    best = int(values.argmax())
                    tops[i, f], lefts[i, f] = grid_top[best], grid_left[best]
            continue
        if sensitivity is None:
            raise ValueError("the gradient search needs a sensitivity map")
        # summed sensitivity of every window on the grid, per frame: (T, P)
        per_pixel = sensitivity[i].sum(dim=1, keepdim=True)  # (T, 1, H, W)
        sums = F.avg_pool2d(per_pixel, (height, width), stride=1) * (height * width)  # (T, 1, H-h+1, W-w+1)
        scores = sums[:, 0][:, grid_top, grid_left]  # (T, P)
        k = min(top_k, num_pos)
        if placement == "shared":
            ranked = scores[active].sum(dim=0).topk(k).indices  # (k,)
            cand = ranked.view(-1, 1).expand(k, t)  # (k, T)
        else:
            cand = scores.topk(k, dim=1).indices.T  # (k, T): candidate j = every frame's j-th best
        values = _objective_of_candidates(
            model, x[i : i + 1], fill[i : i + 1], crit_i, grid_top[cand], grid_left[cand], size, frames
        )
        best = int(values.argmax())
        evaluated += k
        tops[i], lefts[i] = grid_top[cand[best]], grid_left[cand[best]]

    ctx.info["region"] = {
        "kind": "rectangle",
        "height": height,
        "width": width,
        "search": search,
        "stride": stride,
        "placement": placement,
        "candidates_evaluated": evaluated,
        # (N, frames) in the order of ctx.info["frames"]
        "top": tops[:, active].tolist(),
        "left": lefts[:, active].tolist(),
    }
    if search == "gradient":
        ctx.info["region"]["top_k"] = top_k
    return _window_masks(tops, lefts, height, width, frames, h, w)


def border_region(x: Tensor, ctx: AttackContext, *, width: int, frames: Tensor) -> Tensor:
    """Mask `(1, T, 1, H, W)` of a frame border `width` pixels thick on the selected frames."""
    mask = border_mask(x.shape, width).to(x.device)  # raises BadParameterError when too wide
    ctx.info["region"] = {"kind": "border", "width": width}
    return mask & frame_mask_5d(frames, x)


def choose_pixels(
    x: Tensor,
    ctx: AttackContext,
    *,
    count: int,
    selection: PixelSelection,
    sensitivity: Tensor | None,
    frames: Tensor,
) -> Tensor:
    """Mask `(N, T, 1, H, W)` of `count` pixels per selected frame (all channels of each pixel).

    `selection="gradient"` takes the pixels with the largest `sensitivity` summed over channels (needs
    `sensitivity` `(N, T, C, H, W)`); `"random"` draws them uniformly with the attack's generator.
    """
    n, t, _, h, w = x.shape
    if count > h * w:
        raise BadParameterError(f"expected at most {h * w} pixels per {h} x {w} frame, got {count}")
    masks = []
    for i in range(n):
        if selection == "gradient":
            if sensitivity is None:
                raise ValueError("gradient pixel selection needs a sensitivity map")
            # ties (e.g. zero sensitivity everywhere) are broken by a seeded random jitter, not by index
            score = sensitivity[i].sum(dim=1).reshape(t, h * w)
            jitter = torch.rand(score.shape, generator=ctx.generator, device=x.device) * 1e-30
            idx = (score + jitter).topk(count, dim=1).indices  # (T, count)
        else:
            keys = torch.rand((t, h * w), generator=ctx.generator, device=x.device)
            idx = keys.topk(count, dim=1).indices
        masks.append(pixel_mask(x.shape, idx))
    ctx.info["region"] = {"kind": "pixels", "pixels_per_frame": count, "selection": selection}
    return torch.cat(masks) & frame_mask_5d(frames, x)


@dataclass(kw_only=True)
class FramesParam:
    """The `frames` hyperparameter every region attack shares."""

    frames: str = param(
        "all", "video frames that may change: all, K (first K), random:K, or a list like 0,3,7"
    )


@dataclass(kw_only=True)
class RectangleParams(FramesParam):
    """Hyperparameters of a rectangle (ROA) and its position search."""

    height: int = param(30, "rectangle height in the video's own pixels", min=1)
    width: int = param(30, "rectangle width in the video's own pixels", min=1)
    search: Literal["exhaustive", "gradient", "random"] = param(
        "exhaustive",
        "how the position is chosen: exhaustive (probe every grid position), gradient (rank windows by "
        "summed squared gradient, evaluate the top_k), random (the MultAV authors' video code)",
    )
    stride: int = param(10, "grid step in pixels between candidate positions (exhaustive, gradient)", min=1)
    top_k: int = param(10, "windows evaluated by the gradient search", min=1)
    placement: Literal["shared", "per-frame"] = param(
        "shared", "shared: one position on every frame; per-frame: one per frame"
    )

    def rectangle(
        self,
        model: nn.Module,
        x: Tensor,
        criterion: Criterion,
        ctx: AttackContext,
        *,
        fill: Tensor,
        sensitivity: Tensor | None,
    ) -> Tensor:
        """The rectangle's mask `(N, T, 1, H, W)`, searched as the parameters say (see `choose_rectangle`)."""
        return choose_rectangle(
            model,
            x,
            criterion,
            ctx,
            fill=fill,
            sensitivity=sensitivity,
            height=self.height,
            width=self.width,
            search=self.search,
            stride=self.stride,
            top_k=self.top_k,
            placement=self.placement,
            frames=frame_selection(self.frames, x, ctx),
        )


@dataclass(kw_only=True)
class BorderParams(FramesParam):
    """Hyperparameters of an adversarial frame border (AF)."""

    width: int = param(10, "border width in the video's own pixels", min=1)

    def border_mask(self, x: Tensor, ctx: AttackContext) -> Tensor:
        """The border's mask `(1, T, 1, H, W)` on the selected frames."""
        return border_region(x, ctx, width=self.width, frames=frame_selection(self.frames, x, ctx))


@dataclass(kw_only=True)
class PixelParams(FramesParam):
    """Hyperparameters of scattered adversarial pixels (SPA)."""

    pixels: int = param(100, "adversarial pixels per frame (all three channels of each)", min=1)
    selection: Literal["gradient", "random"] = param(
        "gradient", "gradient: the pixels with the largest gradient; random: uniform (the authors' code)"
    )

    def pixel_mask(self, x: Tensor, ctx: AttackContext, *, sensitivity: Tensor | None) -> Tensor:
        """The chosen pixels' mask `(N, T, 1, H, W)` on the selected frames."""
        frames = frame_selection(self.frames, x, ctx)
        return choose_pixels(
            x, ctx, count=self.pixels, selection=self.selection, sensitivity=sensitivity, frames=frames
        )
