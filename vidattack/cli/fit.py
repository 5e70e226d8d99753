"""Column widths for a summary table that must fit the terminal without breaking a word.

Rich shares a too-narrow width out in ways that cut the columns at the right edge or fold words in
the middle (`move_lef`/`t_1.mp4`); here the short columns (flags, numbers) get their widths, the
label column what it needs up to what is left, and the name column the rest, cut with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Sequence


#: What a table of n columns draws besides its cells: each column's padding (a space on either side,
#: Rich's default), the n - 1 rules between columns and the two edges.
def _overhead(n: int) -> int:
    return 2 * n + (n - 1) + 2


def fit_widths(
    width: int, rows: Sequence[Sequence[str]], headers: Sequence[str], *, name: int, labels: int
) -> list[int]:
    """Widths for columns holding `rows` (plain strings) under `headers`, within `width` characters.

    Every column but `name` and `labels` gets its longest entry (its header wraps at spaces, so its
    longest header word), `labels` what its longest entry needs up to what is left once `name` has 16
    characters, and `name` the rest (6 at least): a label line wraps at its spaces, and a word wider
    than its column (a long file name, a path in an error) is cut with an ellipsis. On a terminal too
    narrow even for that, the table is wider than it.
    """

    def longest(texts: Sequence[str]) -> int:
        return max((len(t) for t in texts), default=1)

    def longest_word(texts: Sequence[str]) -> int:
        return max((len(w) for t in texts for w in t.split()), default=1)

    columns = [[row[i] for row in rows] for i in range(len(headers))]
    # headers on one line when everything fits so, else wrapped at their spaces
    whole = [max(longest(columns[i]), len(h)) for i, h in enumerate(headers)]
    least = [min(w, 16) if i in (name, labels) else w for i, w in enumerate(whole)]
    out = (
        whole
        if sum(least) + _overhead(len(headers)) <= width
        else [max(longest(columns[i]), longest_word([h])) for i, h in enumerate(headers)]
    )
    fixed = sum(w for i, w in enumerate(out) if i not in (name, labels))
    room = width - fixed - _overhead(len(headers))
    out[labels] = max(min(out[labels], room - min(out[name], 16)), 8)
    out[name] = max(min(out[name], room - out[labels]), 6)
    return out
