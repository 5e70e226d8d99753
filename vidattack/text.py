"""Data as one printable line: the one way vidattack shows a path, label or message it did not write.

File names may hold any byte but `/` and NUL. Printed as they are, a newline in a name splits an error
line in two and a byte that is not UTF-8 (kept by Python as a lone surrogate) makes `print` itself
fail. `literal` escapes exactly those and leaves the rest (unicode included) readable. It imports
nothing heavy: the CLI uses it for every line it prints, the pictures for their titles, the video layer
for its messages.
"""

from __future__ import annotations

import os
import unicodedata


def literal(text: object) -> str:
    """`text` (a `str`, a path, bytes or anything with a `str()`) as one printable line: control
    characters (newline, tab, escape) and bytes that are not valid UTF-8 written as escapes (`\\n`,
    `\\xff`), everything else as is. Already escaped text is left unchanged."""
    s = os.fsdecode(text) if isinstance(text, bytes | os.PathLike) else str(text)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: an undecodable byte of the original name
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029":
            out.append(repr(ch)[1:-1])
        else:
            out.append(ch)
    return "".join(out)


def levels(value: object) -> str:
    """A budget or perturbation in [0, 1] pixel units as 8-bit levels (`4/255`, `2.50/255`): the unit
    every command and page shows them in; `-` for anything but a number."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    n = float(value) * 255
    return f"{n:.0f}/255" if abs(n - round(n)) < 1e-6 else f"{n:.2f}/255"


#: The most characters of one value (a path, a label) an error message shows: a 100 KB path or a 1 MB
#: label must not become a 100 KB error line.
SHORT = 80


def shorten(text: object, limit: int = SHORT) -> str:
    """`literal(text)` cut to `limit` characters with an ellipsis in the middle (`abc…xyz`), so the
    start and the end of a long name both stay visible."""
    s = literal(text)
    if len(s) <= limit:
        return s
    head = (limit - 1) // 2
    return f"{s[:head]}…{s[len(s) - (limit - 1 - head) :]}"
