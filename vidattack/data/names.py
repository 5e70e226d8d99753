"""File names for data set items: one name per video id, never the same name for two ids.

Ids are relative paths as a manifest or a class folder gives them and may hold anything. `eval
--outputs` keeps each adversarial video as `NAME.adv.mp4`; a plain character substitution would make
`sub/a b.mp4` and `sub/a_b.mp4` the same file, so that one video silently overwrites the other while
both records say ok.
"""

from __future__ import annotations

import hashlib
import re

#: Characters kept as they are; anything else is replaced and marks the name as changed.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Characters of an id kept in a changed name (the rest is in the hash); file systems allow 255 bytes.
_KEEP = 100
#: Hex digits of the id's SHA-256 a changed name ends with: 48 bits, so an accidental collision in a
#: data set of a million videos is about one in a thousand million.
_HASH = 12


def kept_name(item_id: str) -> str:
    """A file name (without suffix) for the item `item_id`, distinct for distinct ids.

    An id made only of letters, digits, `.`, `_` and `-` (and not starting with `.`) is its own name
    (`synthetic-13-00004`). Any other id becomes its readable part, a `~` and a hash of the whole id
    (`sub__a_b.mp4~3f2a…`): `~` never occurs in an unchanged name, so the two kinds cannot meet.
    """
    if not _UNSAFE.search(item_id) and not item_id.startswith(".") and 0 < len(item_id) <= _KEEP:
        return item_id
    readable = _UNSAFE.sub("_", item_id.replace("/", "__")).strip("._")[:_KEEP] or "video"
    digest = hashlib.sha256(item_id.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH]
    return f"{readable}~{digest}"
