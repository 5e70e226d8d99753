"""Choosing where a region attack acts: rectangle search, salient pixels, and the region parameters.

Shared by the additive region attacks (`vidattack.attacks.region`) and their multiplicative MultAV
versions (`vidattack.attacks.multav`). Each choice is a `vidattack.threat.Region` (shape and frames),
whose mask the attack gives its threat model; what was chosen is written into `ctx.info["region"]`
(and the frames into `ctx.info["frames"]`), so the report says where the attack acted.

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

from vidattack.attacks.context import AttackContext
from vidattack.attacks.counting import counting_for
from vidattack.attacks.params import param
from vidattack.criteria import Criterion
from vidattack.errors import BadParameterError
from vidattack.threat import ALL_FRAMES, Border, FrameSpec, Pixels, Rectangle, Region, rectangles

Search = Literal["exhaustive", "gradient", "random"]
Placement = Literal["shared", "per-frame"]
PixelSelection = Literal["gradient", "random"]

# Candidate videos evaluated per forward pass are capped by their total size, so a search over a
# 1080p video does not allocate gigabytes at once (about 64 MB of float32 per batch).
_CANDIDATE_ELEMENTS = 1 << 24


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
            masks = rectangles(tops, lefts, size[0], size[1], h, w) & frames.view(1, -1, 1, 1)
            candidates = torch.where(masks.unsqueeze(2), fill_n, x_n)  # (B, T, C, H, W)
            labels = criterion_n.labels.expand(tops.shape[0])
            values.append(dataclasses.replace(criterion_n, labels=labels).objective(model(candidates)))
    return torch.cat(values)


@dataclass(frozen=True)
class _Grid:
    """Candidate top-left corners on a `stride` grid, flattened: `top`, `left` `(P,)`."""

    top: Tensor
    left: Tensor

    @classmethod
    def of(cls, x: Tensor, height: int, width: int, stride: int) -> _Grid:
        ys = torch.tensor(grid_positions(x.shape[-2], height, stride), device=x.device)
        xs = torch.tensor(grid_positions(x.shape[-1], width, stride), device=x.device)
        return cls(top=ys.repeat_interleave(len(xs)), left=xs.repeat(len(ys)))

    @property
    def size(self) -> int:
        return self.top.numel()


def _best_exhaustive(
    model: nn.Module,
    x_i: Tensor,
    fill_i: Tensor,
    crit_i: Criterion,
    grid: _Grid,
    size: tuple[int, int],
    frames: Tensor,
) -> int:
    """Index into the grid of the position whose probe (on `frames`) maximizes the objective."""
    t = x_i.shape[1]
    cand_top = grid.top.view(-1, 1).expand(grid.size, t)  # (P, T)
    cand_left = grid.left.view(-1, 1).expand(grid.size, t)
    values = _objective_of_candidates(model, x_i, fill_i, crit_i, cand_top, cand_left, size, frames)
    return int(values.argmax())


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
) -> Rectangle:
    """Where to put a `height x width` rectangle in each video: a `Rectangle` with `(N, T)` corners.

    `fill` `(N, T, C, H, W)` is the probe: what the rectangle's pixels become when a position is
    evaluated (a gray 0.5 for additive ROA, the first multiplicative step for MultAV-ROA).
    `sensitivity` `(N, T, C, H, W)` is a per-pixel score, needed by the gradient search (squared
    gradient). `frames` `(T,)` bool: frames that carry the rectangle (and where it is searched).
    `placement="shared"` puts the rectangle at one position on every frame; `"per-frame"` chooses each
    frame's position on its own (exhaustive: the probe on that frame alone; gradient: candidate j takes
    every frame's j-th best window).
    """
    check_rectangle_fits(x, height, width)
    n, t = x.shape[:2]
    device = x.device
    size = (height, width)
    grid = _Grid.of(x, height, width, stride)
    active = frames.nonzero().flatten()  # positions in the sampled frames that carry a rectangle
    tops = torch.zeros(n, t, dtype=torch.long, device=device)
    lefts = torch.zeros(n, t, dtype=torch.long, device=device)
    evaluated = 0  # per video: every video of a batch evaluates as many candidates
    for i in range(n):
        with counting_for(model, [i]):  # every candidate evaluated here is a query of video i
            evaluated = _place_rectangle(
                model,
                x,
                criterion,
                ctx,
                i,
                fill,
                sensitivity,
                size,
                grid,
                search,
                top_k,
                placement,
                frames,
                tops,
                lefts,
            )
    _describe_rectangle(ctx, height, width, search, stride, placement, evaluated, tops, lefts, active, top_k)
    return Rectangle(height, width, tops, lefts)


def _place_rectangle(
    model: nn.Module,
    x: Tensor,
    criterion: Criterion,
    ctx: AttackContext,
    i: int,
    fill: Tensor,
    sensitivity: Tensor | None,
    size: tuple[int, int],
    grid: _Grid,
    search: Search,
    top_k: int,
    placement: Placement,
    frames: Tensor,
    tops: Tensor,
    lefts: Tensor,
) -> int:
    """Choose video `i`'s rectangle corners into `tops[i]`, `lefts[i]`; the candidates it evaluated."""
    t, device = x.shape[1], x.device
    active = frames.nonzero().flatten()
    evaluated = 0
    crit_i = dataclasses.replace(criterion, labels=criterion.labels[i : i + 1].to(device))
    x_i, fill_i = x[i : i + 1], fill[i : i + 1]
    if search == "random":
        count = 1 if placement == "shared" else t
        gen = ctx.generator_of(i)
        pick = torch.randint(grid.size, (count,), generator=gen, device=device).expand(t)
        tops[i], lefts[i] = grid.top[pick], grid.left[pick]
    elif search == "exhaustive" and placement == "shared":
        best = _best_exhaustive(model, x_i, fill_i, crit_i, grid, size, frames)
        evaluated += grid.size
        tops[i], lefts[i] = grid.top[best], grid.left[best]
    elif search == "exhaustive":
        # one frame at a time: the probe on frame f alone, every grid position
        for f in active.tolist():
            only_f = torch.zeros_like(frames)
            only_f[f] = True
            best = _best_exhaustive(model, x_i, fill_i, crit_i, grid, size, only_f)
            evaluated += grid.size
            tops[i, f], lefts[i, f] = grid.top[best], grid.left[best]
    else:
        cand = _gradient_candidates(sensitivity, i, grid, size, top_k, placement, active)  # (k, T)
        values = _objective_of_candidates(
            model, x_i, fill_i, crit_i, grid.top[cand], grid.left[cand], size, frames
        )
        best = int(values.argmax())
        evaluated += cand.shape[0]
        tops[i], lefts[i] = grid.top[cand[best]], grid.left[cand[best]]
    return evaluated


def _describe_rectangle(
    ctx: AttackContext,
    height: int,
    width: int,
    search: Search,
    stride: int,
    placement: Placement,
    evaluated: int,
    tops: Tensor,
    lefts: Tensor,
    active: Tensor,
    top_k: int,
) -> None:
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


def _gradient_candidates(
    sensitivity: Tensor | None,
    i: int,
    grid: _Grid,
    size: tuple[int, int],
    top_k: int,
    placement: Placement,
    active: Tensor,
) -> Tensor:
    """Grid indices `(k, T)` of the `top_k` windows with the largest summed sensitivity of sample `i`."""
    if sensitivity is None:
        raise ValueError("the gradient search needs a sensitivity map")
    height, width = size
    t = sensitivity.shape[1]
    # summed sensitivity of every window on the grid, per frame: (T, P)
    per_pixel = sensitivity[i].sum(dim=1, keepdim=True)  # (T, 1, H, W)
    sums = F.avg_pool2d(per_pixel, (height, width), stride=1) * (height * width)  # (T, 1, H-h+1, W-w+1)
    scores = sums[:, 0][:, grid.top, grid.left]  # (T, P)
    k = min(top_k, grid.size)
    if placement == "shared":
        ranked = scores[active].sum(dim=0).topk(k).indices  # (k,)
        return ranked.view(-1, 1).expand(k, t)
    return scores.topk(k, dim=1).indices.T  # candidate j = every frame's j-th best


def choose_pixels(
    x: Tensor,
    ctx: AttackContext,
    *,
    count: int,
    selection: PixelSelection,
    sensitivity: Tensor | None,
) -> Pixels:
    """`count` pixels per frame of each video (all channels of each pixel).

    `selection="gradient"` takes the pixels with the largest `sensitivity` summed over channels (needs
    `sensitivity` `(N, T, C, H, W)`); `"random"` draws them uniformly with the attack's generator.
    """
    n, t, _, h, w = x.shape
    if count > h * w:
        raise BadParameterError(f"expected at most {h * w} pixels per {h} x {w} frame, got {count}")
    chosen = []
    for i in range(n):
        if selection == "gradient":
            if sensitivity is None:
                raise ValueError("gradient pixel selection needs a sensitivity map")
            # ties (e.g. zero sensitivity everywhere) are broken by a seeded random jitter, not by index
            score = sensitivity[i].sum(dim=1).reshape(t, h * w)
            jitter = torch.rand(score.shape, generator=ctx.generator_of(i), device=x.device) * 1e-30
            chosen.append((score + jitter).topk(count, dim=1).indices)  # (T, count)
        else:
            keys = torch.rand((t, h * w), generator=ctx.generator_of(i), device=x.device)
            chosen.append(keys.topk(count, dim=1).indices)
    ctx.info["region"] = {"kind": "pixels", "pixels_per_frame": count, "selection": selection}
    return Pixels(torch.stack(chosen))  # (N, T, count)


@dataclass(kw_only=True)
class FramesParam:
    """The `frames` hyperparameter every region attack shares."""

    # param() returns a dataclasses.field and FrameSpec is frozen, so the default is never shared mutably
    frames: FrameSpec = param(  # noqa: RUF009
        ALL_FRAMES, "video frames that may change: all, K (first K), random:K, or a list like 0,3,7"
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
    ) -> Region:
        """The searched rectangle on the selected frames (see `choose_rectangle`)."""
        frames = ctx.select_frames(self.frames)
        shape = choose_rectangle(
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
            frames=frames,
        )
        return Region(shape, frames)


@dataclass(kw_only=True)
class BorderParams(FramesParam):
    """Hyperparameters of an adversarial frame border (AF)."""

    width: int = param(10, "border width in the video's own pixels", min=1)

    def border(self, ctx: AttackContext) -> Region:
        """A border `width` pixels thick on the selected frames."""
        frames = ctx.select_frames(self.frames)
        ctx.info["region"] = {"kind": "border", "width": self.width}
        return Region(Border(self.width), frames)


@dataclass(kw_only=True)
class PixelParams(FramesParam):
    """Hyperparameters of scattered adversarial pixels (SPA)."""

    pixels: int = param(100, "adversarial pixels per frame (all three channels of each)", min=1)
    selection: Literal["gradient", "random"] = param(
        "gradient", "gradient: the pixels with the largest gradient; random: uniform (the authors' code)"
    )

    def scattered(self, x: Tensor, ctx: AttackContext, *, sensitivity: Tensor | None) -> Region:
        """The chosen pixels on the selected frames."""
        frames = ctx.select_frames(self.frames)
        shape = choose_pixels(x, ctx, count=self.pixels, selection=self.selection, sensitivity=sensitivity)
        return Region(shape, frames)
