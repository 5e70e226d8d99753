"""The Chromium flags the pages are checked and photographed under (tests/test_page.py,
benchmarks/page_load.py, benchmarks/page_screenshots.py): headless, and with the background
networking a closed machine refuses turned off, so a page that loads shows it needs no network."""

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
