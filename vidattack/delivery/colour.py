"""The exact, differentiable part of a delivery encode: RGB -> Y'CbCr 4:2:0 -> RGB as tensor operations.

A delivery copy is H.264 or VP9 in yuv420p. Before the codec's lossy coding there are two steps that
are plain linear maps, so an attack can differentiate through them exactly:

1. RGB -> Y'CbCr with the file's matrix (BT.601 or BT.709, ITU-R BT.601-7 / BT.709-6 Table 3) in
   limited ("tv", "MPEG") range: Y' in 16..235, Cb/Cr in 16..240 code values.
2. 4:2:0 chroma subsampling: each 2x2 block of Cb and Cr becomes its mean. `vidattack.delivery.encode`
   converts with swscale's AREA scaler, which is exactly this mean (measured: a least-squares fit of
   swscale's output gives weights 1/4 on the 2x2 block and ~0 elsewhere; its default BILINEAR
   would instead weigh rows 2i-1..2i+2 by 1/8, 3/8, 3/8, 1/8).

On the way back, FFmpeg's yuv420p -> rgb24 conversion (what `load_video` and most software players
do) repeats each chroma sample over its 2x2 block (nearest neighbour) and clips to 0..255. Its
fixed-point fast path comes out lower than the exact inverse by about 1.0 / 1.4 / 1.0 levels in R / G /
B (measured with a least-squares fit over random planes, BT.601 and BT.709 alike): `FFMPEG_RGB_BIAS`
adds that constant so the path's value lands on FFmpeg's (it changes no gradient).

What this module leaves out is rounding to 8-bit code values at each step (up to 1 level per
channel): `vidattack.delivery.simulate` takes the rounding with the codec's loss from the real round
trip. Odd sizes are padded by one replicated edge pixel, as the encoder does.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FFMPEG_RGB_BIAS",
    "KR_KB",
    "rgb_to_yuv",
    "subsample_420",
    "upsample_420",
    "yuv420_path",
    "yuv_to_rgb",
]

Matrix = Literal["bt601", "bt709"]

# Luma weights of red and blue; green is 1 - kr - kb.
KR_KB: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}

# FFmpeg's yuv420p -> rgb24 output minus the exact inverse, in levels, per R, G, B (see above).
FFMPEG_RGB_BIAS: tuple[float, float, float] = (-1.0, -1.4, -1.0)


def _check_matrix(matrix: str) -> tuple[float, float]:
    if matrix not in KR_KB:
        raise ValueError(f"expected matrix bt601 or bt709, got {matrix!r}")
    return KR_KB[matrix]


def rgb_to_yuv(x: Tensor, matrix: Matrix = "bt601") -> Tensor:
    """Limited-range Y'CbCr of RGB in [0, 1], channels on dim -3: `(..., 3, H, W)` -> `(..., 3, H, W)`.

    The result is in 8-bit code values / 255 (Y' in [16/255, 235/255], Cb and Cr in [16/255,
    240/255]), so one unit of 1/255 is one code level as in the file.
    """
    kr, kb = _check_matrix(matrix)
    kg = 1.0 - kr - kb
    r, g, b = x.unbind(dim=-3)
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2.0 * (1.0 - kb))
    cr = (r - y) / (2.0 * (1.0 - kr))
    return torch.stack(
        ((16.0 + 219.0 * y) / 255.0, (128.0 + 224.0 * cb) / 255.0, (128.0 + 224.0 * cr) / 255.0), dim=-3
    )


def yuv_to_rgb(yuv: Tensor, matrix: Matrix = "bt601", *, ffmpeg_bias: bool = False) -> Tensor:
    """Inverse of `rgb_to_yuv`, clipped to [0, 1] as the decoder's conversion clips; `ffmpeg_bias`
    adds `FFMPEG_RGB_BIAS` first, to match FFmpeg's own conversion."""
    kr, kb = _check_matrix(matrix)
    kg = 1.0 - kr - kb
    yq, cbq, crq = yuv.unbind(dim=-3)
    y = (yq * 255.0 - 16.0) / 219.0
    cb = (cbq * 255.0 - 128.0) / 224.0
    cr = (crq * 255.0 - 128.0) / 224.0
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / kg
    if ffmpeg_bias:
        r, g, b = (c + bias / 255.0 for c, bias in zip((r, g, b), FFMPEG_RGB_BIAS, strict=True))
    return torch.stack((r, g, b), dim=-3).clamp(0.0, 1.0)


def subsample_420(c: Tensor) -> Tensor:
    """4:2:0 chroma subsampling of planes `(..., H, W)` with H, W even: the mean of each 2x2 block."""
    h, w = c.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"expected even plane sizes, got {h}x{w} (pad first)")
    lead = c.shape[:-2]
    out = F.avg_pool2d(c.reshape(-1, 1, h, w), kernel_size=2)  # (B, 1, H/2, W/2)
    return out.reshape(*lead, h // 2, w // 2)


def upsample_420(c: Tensor) -> Tensor:
    """FFmpeg's yuv420p -> RGB chroma upsampling: each sample repeated over its 2x2 block."""
    return c.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def yuv420_path(x: Tensor, matrix: Matrix = "bt601", *, ffmpeg_bias: bool = True) -> Tensor:
    """RGB `(..., 3, H, W)` in [0, 1] as it comes out of yuv420p without quantization: RGB -> Y'CbCr
    (limited range, `matrix`) -> 2x2-mean chroma -> nearest upsampling -> RGB (plus FFmpeg's constant
    bias unless `ffmpeg_bias=False`), clipped to [0, 1].

    Differentiable everywhere except at the clip. Odd H or W are padded by replicating the last row or
    column (as the encoder pads) and cropped back.
    """
    h, w = x.shape[-2:]
    ph, pw = h % 2, w % 2
    lead = x.shape[:-3]
    if ph or pw:
        flat = x.reshape(-1, 3, h, w)
        x = F.pad(flat, (0, pw, 0, ph), mode="replicate").reshape(*lead, 3, h + ph, w + pw)
    yuv = rgb_to_yuv(x, matrix)
    luma = yuv[..., :1, :, :]
    chroma = upsample_420(subsample_420(yuv[..., 1:, :, :]))
    out = yuv_to_rgb(torch.cat((luma, chroma), dim=-3), matrix, ffmpeg_bias=ffmpeg_bias)
    return out[..., :h, :w]
