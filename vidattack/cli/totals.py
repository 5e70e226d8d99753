"""The lines a batch command ends with: how many inputs were fooled, and where the files went.

19 of 19 fooled (judged on the written file); 16 of 19 still fooled after delivery
outputs in vidattack-out/ (open vidattack-out/index.html to see them)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidattack.text import literal


def totals_line(records: Sequence[dict[str, Any]]) -> str:
    """`N of M fooled` over the records (failed inputs count in M and are named), with the rate after
    delivery when some record has one."""
    ok = [r for r in records if r.get("status") == "ok"]
    fooled = sum(bool(r.get("success_after_encode")) for r in ok)
    line = f"{fooled} of {len(records)} fooled (judged on the written file)"
    delivered = [r["delivery"] for r in ok if isinstance(r.get("delivery"), dict)]
    if delivered:
        survived = sum(bool(d.get("success_after_delivery")) for d in delivered)
        line += f"; {survived} of {len(delivered)} still fooled after delivery"
    failed = len(records) - len(ok)
    if failed:
        line += f"; {failed} failed"
    return line


def outputs_line(out: Path, page: Path | None) -> str:
    """Where the files went, and the page to open (when one was drawn)."""
    line = f"outputs in {literal(out)}{'' if str(out).endswith('/') else '/'}"
    if page is not None and page.is_file():
        line += f" (open {literal(page)} to see them)"
    return line


def robust_to_hint(records: Sequence[dict[str, Any]]) -> str | None:
    """A hint naming `--robust-to` when a delivery undid the attack on some input that the attack had
    fooled, and the attack was not made robust to an encode; None otherwise."""
    undone = [
        r
        for r in records
        if r.get("status") == "ok"
        and r.get("success_after_encode")
        and isinstance(r.get("delivery"), dict)
        and not r["delivery"].get("success_after_delivery")
        and not (r.get("attack") or {}).get("robust_to")
    ]
    if not undone:
        return None
    d = undone[0]["delivery"]
    crf = d.get("crf")
    crfs = "-".join(str(c) for c in crf) if isinstance(crf, list) else str(crf)
    spec = f"{d.get('codec')}:crf={crfs}" if d.get("codec") and crf is not None else "CODEC:crf=N"
    return (
        f"hint: the delivery undid the attack on {len(undone)} of {len(records)} input(s); "
        f"--robust-to {literal(spec)} optimises the attack through that encode"
    )
