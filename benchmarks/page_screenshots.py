"""Screenshots of a run page and an eval summary page in headless Chromium (issue #26's docs/ pictures).

    python benchmarks/page_screenshots.py --run RUN_FOLDER --eval EVAL_FOLDER --out docs/

RUN_FOLDER is a `vidattack perturb` output folder (its `index.html`), EVAL_FOLDER a `vidattack eval`
output folder (its `summary.html`; drawn again from its records when missing). Writes
`run-page.png` (the top: totals and table), `run-page-video.png` (the first video's section, opened,
its clean and adversarial previews played for a second) and `eval-summary-page.png`. Same browser
and flags as tests/test_page.py.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vidattack.page.browser import CHROMIUM_ARGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not (args.eval / "summary.html").is_file():
        from vidattack.eval.summary import summarize_dir

        summarize_dir(args.eval)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium installed (apt-get install chromium)")
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.goto((args.run / "index.html").as_uri())
        tab.screenshot(path=str(args.out / "run-page.png"))
        tab.click("#videos tbody tr:first-child a")
        section = tab.locator("details[open]")
        section.locator("button.play").click()
        tab.wait_for_function(
            "() => Array.from(document.querySelectorAll('details[open] .pair video'))"
            ".every(v => v.readyState >= 2 && v.currentTime > 0.5)",
            timeout=20000,
        )
        section.locator("button.play").click()  # paused, so both show the same frame
        section.locator("img").last.scroll_into_view_if_needed()
        tab.wait_for_function(
            "() => Array.from(document.querySelectorAll('details[open] img')).every(i => i.complete)"
        )
        section.screenshot(path=str(args.out / "run-page-video.png"))
        tab.goto((args.eval / "summary.html").as_uri())
        tab.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
        tab.screenshot(path=str(args.out / "eval-summary-page.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
