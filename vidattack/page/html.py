"""Small HTML helpers shared by the pages: escaping, links, the page shell with inline CSS and JS.

Every value that comes from data (file names, labels, model names, notes) goes through `esc` or
`href`; nothing from a report is ever written into the page unescaped, so a file called
`<img src=x onerror=alert(1)>.mp4` shows as that text.
"""

from __future__ import annotations

import html
import os
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from vidattack.files import write_atomic
from vidattack.text import levels, literal

__all__ = ["asset", "document", "esc", "href", "levels", "number", "write_page", "yes_no"]


def esc(value: object) -> str:
    """`value` as HTML text, safe in element content and in quoted attributes; control characters and
    bytes of a file name that are not UTF-8 shown as escapes (`\\xff`), as the terminal shows them."""
    return html.escape(literal(value), quote=True)


def href(target: Path, page_folder: Path) -> str:
    """A relative, percent-encoded and escaped URL from a page in `page_folder` to `target` (`#`, `?`
    and `%` in file names stay part of the name; so do bytes that are not UTF-8)."""
    rel = os.path.relpath(target, page_folder)
    return html.escape(quote(os.fsencode(Path(rel).as_posix()), safe=b"/"), quote=True)


def number(value: object, digits: int = 3) -> str:
    """A number for a table cell (`-` when missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def yes_no(value: object) -> str:
    """A success flag as a coloured yes/no cell body (`-` when unknown)."""
    if value is None:
        return '<span class="muted">-</span>'
    return '<span class="yes">yes</span>' if value else '<span class="no">no</span>'


@cache
def asset(name: str) -> str:
    """The text of a packaged asset (`page.css`, `page.js`)."""
    return resources.files("vidattack.page").joinpath("assets", name).read_text(encoding="utf-8")


def document(title: str, body: str, *, refresh_s: int | None = None) -> str:
    """A whole page: `title` (escaped here), `body` (already HTML), the CSS and JS inline; with
    `refresh_s`, the browser reloads it every so many seconds (while a run is still writing it)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">\n' if refresh_s else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{GENERATOR}\n"
        # nothing on the page may reach the network: only files beside it, inline CSS and inline JS
        '<meta http-equiv="Content-Security-Policy" content="default-src \'self\' file:; '
        "img-src 'self' file: data:; media-src 'self' file:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">\n"
        f"{refresh}<title>{esc(title)}</title>\n<style>\n{asset('page.css')}</style>\n</head>\n"
        f"<body>\n{body}\n<script>\n{asset('page.js')}</script>\n</body>\n</html>\n"
    )


#: Marks a page as ours: a page is redrawn freely, but a file of that name that lacks the mark is not
#: replaced (`ForeignPageError`).
GENERATOR = '<meta name="generator" content="vidattack">'


class ForeignPageError(OSError):
    """A file where a page goes that vidattack did not write."""


def write_page(path: Path, text: str) -> Path:
    """Write a page atomically (a reader never sees half a page). A page vidattack wrote is replaced
    (it is a view of the reports, drawn again at will); any other file there is left alone
    (`ForeignPageError`)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        head = None
    if head is not None and GENERATOR.encode() not in head:
        raise ForeignPageError(f"{literal(path)} exists and was not written by vidattack; not replaced")
    return write_atomic(path, text.encode("utf-8"))
