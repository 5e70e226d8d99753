"""How the run page (`index.html`, issue #26) holds up for a 1,000-video run: render time, size, and
load, sort and filter times in headless Chromium.

Makes N synthetic output sets from one real one: the real set's report is copied N times with another
name, labels and numbers, and its pictures and videos are hard-linked under each name (so the page
links real files of real sizes without N encodes). Then it draws the page, opens it in Chromium (the
system's, driven by Playwright, as tests/test_page.py does) and measures.

    python benchmarks/page_load.py                       # 1,000 videos, from a fresh one-video run
    python benchmarks/page_load.py --videos 1000 --source /tmp/run   # from an existing run folder

Prints one JSON line for a page of one video (the browser's own cost on this machine at this moment)
and one for --videos: videos, render_s (Python, drawing the page from the reports on disk),
html_bytes, dom_content_loaded_ms and load_ms (the browser's navigation timing, median of --repeat
loads), requests_on_load (files the browser fetched to show the page: sections are closed and their
pictures lazy, so it should be 0), sort_ms (clicking the L2 header), filter_ms (typing a filter).
Timings on a shared machine vary from run to run: report the machine's load with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vidattack.page.browser import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "zoom_in", "still"]


def one_real_run(folder: Path) -> Path:
    """A real run of one example (tiny-c3d, default outputs) to copy from."""
    cmd = [sys.executable, "-m", "vidattack", "perturb", str(ROOT / "examples" / "move_left_1.mp4")]
    subprocess.run(
        [*cmd, "--out", str(folder), "--format", "jsonl", "-q"], check=True, stdout=subprocess.DEVNULL
    )
    return folder


def synthesize(source: Path, out: Path, videos: int) -> None:
    """`videos` output sets in `out`, each a renamed copy of the one set in `source`."""
    (report_path,) = sorted(source.glob("*.report.json"))
    stem = report_path.name.removesuffix(".report.json")
    template = json.loads(report_path.read_text())
    files = [p for p in source.iterdir() if p.name.startswith(stem + ".") and p != report_path]
    out.mkdir(parents=True)
    for i in range(videos):
        name = f"clip_{i:04d}"
        for f in files:
            os.link(f, out / (name + f.name[len(stem) :]))
        r = json.loads(json.dumps(template))
        r["input"] = f"videos/{name}.mp4"
        r["clean"]["label"] = LABELS[i % len(LABELS)]
        r["adversarial"]["label"] = LABELS[(i * 3 + 1) % len(LABELS)]
        r["success_after_encode"] = r["success"] = i % 7 != 0
        r["perturbation"]["l2"] = 1.0 + (i * 37 % 1000) / 100
        r["timing"]["total"] = 1.0 + (i % 13) / 10
        (out / f"{name}.report.json").write_text(json.dumps(r))


def measure(page: Path, repeat: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium installed (apt-get install chromium)")
    found: dict[str, list[float]] = {
        "dom_content_loaded_ms": [],
        "load_ms": [],
        "sort_ms": [],
        "filter_ms": [],
    }
    requests = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for _ in range(repeat):
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.goto(page.as_uri(), wait_until="load")
            nav = tab.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            nav = json.loads(nav)
            found["dom_content_loaded_ms"].append(nav["domContentLoadedEventEnd"])
            found["load_ms"].append(nav["loadEventEnd"])
            requests = tab.evaluate("performance.getEntriesByType('resource').length")
            t = time.perf_counter()
            tab.click("#videos th >> text=L2")
            tab.evaluate("new Promise(r => requestAnimationFrame(() => r()))")
            found["sort_ms"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            tab.fill("#filter", "rotate_cw")
            tab.evaluate("new Promise(r => requestAnimationFrame(() => r()))")
            found["filter_ms"].append((time.perf_counter() - t) * 1000)
            tab.close()
        browser.close()
    result = {k: round(statistics.median(v), 1) for k, v in found.items()}
    result["requests_on_load"] = requests
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--source", type=Path, help="a run folder with one output set (default: a fresh run)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from vidattack.page import write_run_page

    with tempfile.TemporaryDirectory(prefix="vidattack-page-") as tmp:
        source = args.source or one_real_run(Path(tmp) / "one")
        for videos in (1, args.videos):  # one video: the browser's own cost on this machine, now
            out = Path(tmp) / f"run-{videos}"
            synthesize(source, out, videos)
            t = time.perf_counter()
            page = write_run_page(out)
            render_s = time.perf_counter() - t
            assert page is not None
            result = {"videos": videos, "render_s": round(render_s, 2), "html_bytes": page.stat().st_size}
            result.update(measure(page, args.repeat))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
