"""Text on pictures: one legible TrueType font for PIL and matplotlib, and file names it can draw.

DejaVu Sans ships inside matplotlib (a dependency), so every install has the same real font; it is
found without importing matplotlib. Characters the font lacks are replaced by "?" before drawing,
so a Chinese or emoji file name never makes matplotlib print "Glyph missing" warnings.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any


@cache
def font_path(bold: bool = False) -> Path | None:
    """matplotlib's bundled DejaVu Sans (None if it cannot be found)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf" / name
    return path if path.is_file() else None


@cache
def pil_font(size: int, bold: bool = False) -> Any:
    """A PIL font of `size` pixels: DejaVu Sans, else PIL's own scalable default."""
    from PIL import ImageFont

    path = font_path(bold)
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


@cache
def _covered() -> frozenset[int]:
    path = font_path()
    if path is None:
        return frozenset(range(32, 127))
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(str(path)).get_charmap())


def font_safe(text: str) -> str:
    """`text` with every character DejaVu Sans cannot draw replaced by "?" (and controls by spaces)."""
    covered = _covered()
    return "".join(" " if not ch.isprintable() else (ch if ord(ch) in covered else "?") for ch in text)
