"""The run page (`index.html`) and the eval page (`summary.html`): escaped, self-contained, and
working in a real headless browser (Chromium from the system's packages, driven by Playwright).

The browser tests are skipped, saying why, only where no Chromium or no Playwright is installed;
`.ci/run` installs both.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from conftest import EXAMPLES
from typer.testing import CliRunner

from vidattack.cli import app
from vidattack.eval.summary import write_summary
from vidattack.page import PageUpdater, render_run_page, write_run_page
from vidattack.page.browser import CHROMIUM_ARGS
from vidattack.pipeline.outputs import is_own_output

HOSTILE = "<img src=x onerror=document.title='pwned'>.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real `vidattack perturb` run of two examples, one of them under a hostile file name."""
    inputs = tmp_path_factory.mktemp("in")
    shutil.copy(EXAMPLES / "move_left_1.mp4", inputs / HOSTILE)
    shutil.copy(EXAMPLES / "still_1.mp4", inputs / "still_1.mp4")
    out = tmp_path_factory.mktemp("run") / "out"
    result = CliRunner().invoke(
        app, ["perturb", str(inputs), "--out", str(out), "--steps", "3", "--format", "jsonl", "-q"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_a_run_writes_its_page_and_browser_previews(run_folder):
    assert (run_folder / "index.html").is_file()
    for name in ("still_1.clean.preview.mp4", "still_1.adv.preview.mp4"):
        with av.open(str(run_folder / name)) as f:
            stream = f.streams.video[0]
            assert (stream.codec_context.name, stream.codec_context.format.name) == ("h264", "yuv420p")
    report = json.loads((run_folder / "still_1.report.json").read_text())
    assert report["outputs"]["adversarial_preview"].endswith("still_1.adv.preview.mp4")
    assert is_own_output(run_folder / "still_1.adv.preview.mp4")  # never attacked again


def test_names_and_labels_are_text_never_markup(run_folder):
    text = (run_folder / "index.html").read_text()
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=document.title=&#x27;pwned&#x27;&gt;.mp4" in text
    # links to the hostile set's files are percent-encoded, so `<`, `'` and spaces cannot end them
    assert "%3Cimg%20src%3Dx%20onerror%3Ddocument.title%3D%27pwned%27%3E.adv.mp4" in text


def test_the_page_needs_no_network():
    page = render_run_page(Path("/nonexistent-run"))
    assert "http://" not in page and "https://" not in page
    assert "0 of 0 fooled" in page


def test_a_running_batch_page_reloads_itself_and_the_final_one_does_not(run_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    updater = PageUpdater(folder, total=5, min_interval=0)
    assert list(updater.follow(["a"])) == ["a"]  # drawn once running, then once at the end
    final = (folder / "index.html").read_text()
    assert 'http-equiv="refresh"' not in final
    write_run_page(folder, expected=5, running=True)
    running = (folder / "index.html").read_text()
    assert 'http-equiv="refresh"' in running and "2 of 5 videos done" in running


def test_an_unreadable_report_is_named_not_fatal(run_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    (folder / "broken.report.json").write_text("{not json")
    page = render_run_page(folder)
    assert "1 report(s) could not be read: broken.report.json" in page
    assert "2 of 2 fooled" in page or "of 2 fooled" in page


def _eval_folder(tmp_path: Path) -> Path:
    """An eval folder with records of two budgets of one attack (synthetic numbers)."""
    from vidattack.eval.summary import summarize

    out = tmp_path / "eval"
    out.mkdir()
    records = []
    configs = {}
    for key, budget, fooled in (("k2", 2 / 255, 1), ("k4", 4 / 255, 2)):
        configs[key] = {"attack": "pgd-linf", "budget": f"{budget * 255:.0f}/255", "budget_value": budget}
        for i, video in enumerate(["a.mp4", HOSTILE, "c.mp4"]):
            success = i < fooled
            records.append(
                {"key": key, "video": video, "attack": "pgd-linf", "budget": None, "target_mode": "untargeted",
                 "label": 0, "label_name": "move_left", "target": None, "clean": 0,
                 "adversarial": 1 if success else 0, "reencoded": 1 if success else 0, "attacked": True,
                 "success": success, "success_after_encode": success, "linf": budget * 255, "l2": 1.0 + i,
                 "map": 0.5 + i, "ratio_max": None, "frames_perturbed": 16, "queries": 5, "seconds": 1.0,
                 "status": "ok"}
            )  # fmt: skip
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_summary(out, summarize(records, configs))
    return out


def test_eval_writes_a_summary_page_with_its_cases(tmp_path):
    page = (_eval_folder(tmp_path) / "summary.html").read_text()
    assert "robust_accuracy.png" in page
    assert "not fooled after encode (2)" in page
    assert "fooled after encode with the smallest mean change (2 fooled)" in page
    assert "<img src=x" not in page


# -- in a real browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    assert dialogs == [], "a script from the data ran"
    page.close()


def _shoot(page, name: str) -> None:
    """With VIDATTACK_SCREENSHOTS=FOLDER, keep a full-page screenshot (docs/ holds the committed ones)."""
    folder = os.environ.get("VIDATTACK_SCREENSHOTS")
    if folder:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_in_a_browser_the_videos_load_and_play_side_by_side(page, run_folder):
    page.goto((run_folder / "index.html").as_uri())
    page.click("text=still_1.mp4")  # the table row's link opens the video's section
    section = page.locator("details[open]")
    assert section.count() == 1
    section.locator("button.play").click()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('details[open] .pair video'))"
        ".every(v => v.readyState >= 2 && v.currentTime > 0.2 && !v.error)",
        timeout=15000,
    )
    clean_t, adv_t = page.evaluate(
        "Array.from(document.querySelectorAll('details[open] .pair video')).map(v => v.currentTime)"
    )
    assert abs(clean_t - adv_t) < 0.25  # in sync
    img = section.locator("img").first
    img.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())


def test_in_a_browser_a_hostile_name_is_text_and_the_table_sorts(page, run_folder):
    page.goto((run_folder / "index.html").as_uri())
    assert page.title().startswith("vidattack perturb")  # the name's onerror did not run
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("#videos tbody td a", has_text=HOSTILE).count() == 1

    def names() -> list[str]:
        return page.eval_on_selector_all("#videos tbody tr", "rs => rs.map(r => r.cells[1].textContent)")

    page.click("#videos th >> text=input")
    ascending = names()
    page.click("#videos th >> text=input")
    assert names() == list(reversed(ascending)) and len(ascending) == 2
    page.fill("#filter", "still")
    assert page.locator("#videos tbody tr:visible").count() == 1
    assert page.text_content("#shown") == "1 of 2 shown"
    page.fill("#filter", "")
    _shoot(page, "run-page-two-videos.png")


def test_in_a_browser_the_eval_page_sorts_and_shows_its_plot(page, tmp_path):
    folder = _eval_folder(tmp_path)
    page.goto((folder / "summary.html").as_uri())
    page.wait_for_function("() => document.images[0].complete && document.images[0].naturalWidth > 0")
    assert page.locator("img[src=x]").count() == 0
    first = "rs => rs.map(r => r.cells[1].textContent)"
    page.click("#summary th >> text=eps")
    asc = page.eval_on_selector_all("#summary tbody tr", first)
    page.click("#summary th >> text=eps")
    assert page.eval_on_selector_all("#summary tbody tr", first) == list(reversed(asc))
    _shoot(page, "eval-summary-page.png")


def test_a_file_the_tool_did_not_write_is_never_replaced_by_a_page(run_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(run_folder, folder)
    (folder / "index.html").write_text("my own notes")
    assert PageUpdater(folder, total=2).close() is None  # logged, and the batch goes on
    assert (folder / "index.html").read_text() == "my own notes"
