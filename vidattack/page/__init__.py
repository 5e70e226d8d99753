"""Web pages of a run, rendered from the reports on disk: `index.html` for `perturb`, `summary.html`
for `eval`.

Reports are the interface: a page is drawn only from the `S.report.json` files (and the summary files
of an eval) found in a folder, so it can be drawn again at any time, by any process, while a batch is
still running (`PageUpdater`). Everything a page needs is inline or beside it (no server, no network,
no CDN), every name and label is escaped (data is never markup), and a page of 1,000 videos stays
usable: one sortable, filterable table, and per-video sections whose pictures and videos load only
when opened (`loading="lazy"`, `preload="none"`).

Browsers cannot play the lossless `S.adv.mp4` (RGB H.264); `preview.py` writes H.264 yuv420p copies
of the clean and adversarial videos for the page, labelled as previews on it.
"""

from vidattack.page.eval_page import SUMMARY_HTML, write_summary_page
from vidattack.page.preview import PREVIEW_SUFFIXES, write_previews
from vidattack.page.run_page import INDEX_HTML, PageUpdater, render_run_page, write_run_page

__all__ = [
    "INDEX_HTML",
    "PREVIEW_SUFFIXES",
    "SUMMARY_HTML",
    "PageUpdater",
    "render_run_page",
    "write_previews",
    "write_run_page",
    "write_summary_page",
]
