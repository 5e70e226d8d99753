"""Delivery codec specifications: `CODEC[:KEY=VALUE,...]` as `--delivery` and `--robust-to` take them.

Grammar (case-insensitive codec and keys, no spaces needed)::

    h264                         libx264, yuv420p, crf 23, preset medium (FFmpeg's own defaults), MP4
    h264:crf=18,preset=slow
    vp9                          libvpx-vp9, yuv420p, constant quality crf 31 (b=0), speed 1, WebM
    vp9:crf=36,speed=4
    h264:crf=18-28               --robust-to only: every integer CRF from 18 to 28
    h264:crf=18,23,28            --robust-to only: exactly these CRFs (a bare value after crf=... adds one)
    h264:crf=18-28,eot=2,sigma=2 --robust-to only: EOT draws averaged per forward pass, BPDA low-pass

Keys: `crf` (h264 0-51, vp9 0-63), `preset` (h264: ultrafast ... placebo), `speed` (vp9 `cpu-used`,
0-8, lower is slower and better), `matrix` (`bt601`, `bt709` or `auto`: BT.709 from 720 lines up,
BT.601 below, the convention players assume for untagged video; the file is tagged either way).
`--robust-to` also takes `eot` (1-64 encodes per forward pass, their probabilities averaged: each
costs one real encode, and two draws with twice the steps fooled tiny-c3d after h264 crf 23 on 16 of
19 examples where one draw fooled 14) and `sigma` (0-16 pixels, the backward pass's low-pass; 0 is
the plain straight-through estimator). See `vidattack.delivery.simulate`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Any, Literal

from vidattack.errors import BadParameterError

__all__ = [
    "CODECS",
    "X264_PRESETS",
    "DeliverySpec",
    "parse_delivery",
    "parse_robust_to",
]

Matrix = Literal["bt601", "bt709"]


@dataclass(frozen=True)
class _Codec:
    name: str
    encoder: str
    extension: str
    muxer: str  # container of the delivery file
    raw_muxer: str  # container of the in-memory round trip (no index, no seeking: cheapest)
    crf_range: tuple[int, int]
    default_crf: int
    keys: tuple[str, ...]


CODECS: dict[str, _Codec] = {
    "h264": _Codec("h264", "libx264", ".mp4", "mp4", "h264", (0, 51), 23, ("crf", "preset", "matrix")),
    "vp9": _Codec("vp9", "libvpx-vp9", ".webm", "webm", "ivf", (0, 63), 31, ("crf", "speed", "matrix")),
}
# Keys of the optimisation through the codec rather than of the encode: --robust-to only.
_ROBUST_KEYS = ("eot", "sigma")
MAX_EOT = 64
MAX_SIGMA = 16.0
_ALIASES = {"x264": "h264", "avc": "h264", "libx264": "h264", "libvpx-vp9": "vp9", "vp09": "vp9"}

X264_PRESETS: tuple[str, ...] = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


@dataclass(frozen=True)
class DeliverySpec:
    """A delivery encode: codec, the CRF (or, for `--robust-to`, the CRFs to expect), speed and matrix.

    `crfs` holds one value for a delivery file and one or more for delivery-aware optimisation; `crf`
    is the single value (an error when there are several). `preset` is libx264's, `speed` libvpx's
    `cpu-used`; the other is None. `matrix` is `bt601`, `bt709` or None for "auto by frame height".
    `eot` and `sigma` (--robust-to only) set `DeliveryModel`'s draws per forward pass and backward
    low-pass; None means its default.
    """

    codec: Literal["h264", "vp9"]
    crfs: tuple[int, ...]
    preset: str | None = None
    speed: int | None = None
    matrix: Matrix | None = None
    eot: int | None = None
    sigma: float | None = None

    @property
    def crf(self) -> int:
        """The CRF of a single delivery encode."""
        if len(self.crfs) != 1:
            raise BadParameterError(f"expected one CRF for a delivery encode, got {len(self.crfs)}: {self}")
        return self.crfs[0]

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder: `libx264` or `libvpx-vp9`."""
        return CODECS[self.codec].encoder

    @property
    def extension(self) -> str:
        """The delivery file's extension: `.mp4` (h264) or `.webm` (vp9)."""
        return CODECS[self.codec].extension

    @property
    def muxer(self) -> str:
        """The FFmpeg muxer of the delivery file."""
        return CODECS[self.codec].muxer

    def at(self, crf: int) -> DeliverySpec:
        """This spec with the single CRF `crf` (one draw of a `--robust-to` range)."""
        return replace(self, crfs=(int(crf),))

    def matrix_for(self, height: int) -> Matrix:
        """The YUV matrix used for frames `height` pixels high: the given one, else by height."""
        if self.matrix is not None:
            return self.matrix
        return "bt709" if height >= 720 else "bt601"

    def encoder_options(self, crf: int | None = None, threads: int = 1) -> dict[str, str]:
        """FFmpeg options for the encoder at `crf` (default: the single CRF)."""
        value = str(self.crf if crf is None else int(crf))
        if self.codec == "h264":
            return {"crf": value, "preset": self.preset or "medium", "threads": str(threads)}
        # b=0 makes crf a constant-quality target (otherwise libvpx caps it at a default bitrate);
        # deadline good is libvpx's default mode, cpu-used its speed within that mode.
        return {
            "crf": value,
            "b": "0",
            "deadline": "good",
            "cpu-used": str(1 if self.speed is None else self.speed),
            "row-mt": "1",
            "threads": str(threads),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings for a report."""
        out: dict[str, Any] = {"codec": self.codec, "encoder": self.encoder, "pix_fmt": "yuv420p"}
        out["crf"] = self.crfs[0] if len(self.crfs) == 1 else list(self.crfs)
        if self.codec == "h264":
            out["preset"] = self.preset or "medium"
        else:
            out["speed"] = 1 if self.speed is None else self.speed
        out["matrix"] = self.matrix or "auto"
        return out

    def __str__(self) -> str:
        parts = [f"crf={_format_crfs(self.crfs)}"]
        if self.preset is not None:
            parts.append(f"preset={self.preset}")
        if self.speed is not None:
            parts.append(f"speed={self.speed}")
        if self.matrix is not None:
            parts.append(f"matrix={self.matrix}")
        if self.eot is not None:
            parts.append(f"eot={self.eot}")
        if self.sigma is not None:
            parts.append(f"sigma={_format_number(self.sigma)}")
        return f"{self.codec}:{','.join(parts)}"


def _format_number(value: float) -> str:
    # short (`2`, `1.5`) when that is exact; else every digit, so that the text parses back to the
    # same spec (`vidattack eval` stores a configuration's spec as this text and checks its key)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _format_crfs(crfs: tuple[int, ...]) -> str:
    if len(crfs) > 2 and list(crfs) == list(range(crfs[0], crfs[-1] + 1)):
        return f"{crfs[0]}-{crfs[-1]}"
    return ",".join(str(c) for c in crfs)


def parse_delivery(text: str) -> DeliverySpec:
    """Parse a `--delivery` value, `CODEC[:crf=N,preset=P]`: one CRF. Raises `BadParameterError`."""
    return _parse(text, allow_several=False, option="--delivery")


def parse_robust_to(text: str) -> DeliverySpec:
    """Parse a `--robust-to` value: like `--delivery`, and `crf` may be a range `18-28` or a list
    `18,23,28`. Raises `BadParameterError`."""
    return _parse(text, allow_several=True, option="--robust-to")


def _parse(text: str, *, allow_several: bool, option: str) -> DeliverySpec:
    if not isinstance(text, str) or not text.strip():
        raise BadParameterError(f"expected {option} CODEC[:crf=N,...] with CODEC h264 or vp9, got {text!r}")
    name, _, rest = text.strip().partition(":")
    key_name = name.strip().lower()
    key_name = _ALIASES.get(key_name, key_name)
    if key_name not in CODECS:
        close = difflib.get_close_matches(key_name, list(CODECS), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise BadParameterError(f"expected {option} codec h264 or vp9, got {name.strip()!r}{hint}")
    codec = CODECS[key_name]

    values: dict[str, list[str]] = {}
    current: str | None = None
    for raw in rest.split(",") if rest.strip() else []:
        item = raw.strip()
        if "=" in item:
            key, _, value = item.partition("=")
            key = key.strip().lower()
            allowed = codec.keys + (_ROBUST_KEYS if allow_several else ())
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]}?)" if close else ""
                if key in _ROBUST_KEYS:
                    hint = f" ({key} is for --robust-to)"
                raise BadParameterError(
                    f"expected {option} keys {', '.join(allowed)} for {codec.name}, got {key!r}{hint}"
                )
            if key in values:
                raise BadParameterError(f"expected {key} once in {option} {text!r}, got it twice")
            values[key] = [value.strip()]
            current = key
        elif current == "crf" and allow_several and item:
            values["crf"].append(item)  # crf=18,23,28: the bare values continue the list
        else:
            raise BadParameterError(
                f"expected KEY=VALUE after {codec.name}: in {option} {text!r}, got {item!r}"
                + (" (several CRFs are for --robust-to)" if current == "crf" and item else "")
            )

    crfs = _parse_crfs(values.get("crf", [str(codec.default_crf)]), codec, allow_several, option)
    preset = None
    if "preset" in values:
        preset = values["preset"][0].lower()
        if preset not in X264_PRESETS:
            close = difflib.get_close_matches(preset, X264_PRESETS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise BadParameterError(
                f"expected preset one of {', '.join(X264_PRESETS)}, got {values['preset'][0]!r}{hint}"
            )
    speed = None
    if "speed" in values:
        speed = _int(values["speed"][0], "speed", option)
        if not 0 <= speed <= 8:
            raise BadParameterError(f"expected vp9 speed in 0..8 (libvpx cpu-used), got {speed}")
    matrix: Matrix | None = None
    if "matrix" in values:
        m = values["matrix"][0].lower().replace(".", "")
        if m not in ("bt601", "bt709", "auto"):
            raise BadParameterError(f"expected matrix bt601, bt709 or auto, got {values['matrix'][0]!r}")
        matrix = None if m == "auto" else m  # type: ignore[assignment]
    eot, sigma = _optimisation_keys(values, option)
    return DeliverySpec(
        codec=codec.name,  # type: ignore[arg-type]
        crfs=crfs,
        preset=preset,
        speed=speed,
        matrix=matrix,
        eot=eot,
        sigma=sigma,
    )


def _optimisation_keys(values: dict[str, list[str]], option: str) -> tuple[int | None, float | None]:
    """`eot` and `sigma` of a `--robust-to` value, range-checked; None where not given."""
    eot = sigma = None
    if "eot" in values:
        eot = _int(values["eot"][0], "eot", option)
        if not 1 <= eot <= MAX_EOT:
            raise BadParameterError(f"expected eot in 1..{MAX_EOT} (encodes per forward pass), got {eot}")
    if "sigma" in values:
        text = values["sigma"][0]
        try:
            sigma = float(text)
        except ValueError:
            raise BadParameterError(f"expected a number sigma in {option}, got {text!r}") from None
        if not 0 <= sigma <= MAX_SIGMA:  # also refuses nan
            raise BadParameterError(f"expected sigma in 0..{MAX_SIGMA:g} (pixels), got {text}")
    return eot, sigma


def _int(value: str, key: str, option: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadParameterError(f"expected an integer {key} in {option}, got {value!r}") from None


def _parse_crfs(items: list[str], codec: _Codec, allow_several: bool, option: str) -> tuple[int, ...]:
    lo, hi = codec.crf_range
    crfs: list[int] = []
    for item in items:
        if "-" in item.lstrip("-"):
            if not allow_several:
                raise BadParameterError(
                    f"expected one crf for {option}, got the range {item!r} (ranges are for --robust-to)"
                )
            a, _, b = item.partition("-")
            start, stop = _int(a, "crf", option), _int(b, "crf", option)
            if start > stop:
                raise BadParameterError(f"expected a crf range LOW-HIGH with LOW <= HIGH, got {item!r}")
            crfs.extend(range(start, stop + 1))
        else:
            crfs.append(_int(item, "crf", option))
    for c in crfs:
        if not lo <= c <= hi:
            raise BadParameterError(f"expected {codec.name} crf in {lo}..{hi}, got {c}")
    if not crfs:
        raise BadParameterError(f"expected a crf value in {option}, got none")
    return tuple(sorted(set(crfs)))
