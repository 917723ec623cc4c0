"""Screenshot of an explorer page in headless Chromium, with its deepest elite selected.

    .venv/bin/python docs/explore/screenshot.py docs/explore/explore.html docs/explore/explorer.png
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(page_path: str, png: str) -> None:
    html = Path(page_path).read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script id="sparq-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    c = data["runs"][0]["c"]
    # The generated elite with the longest lineage (best quality among equals): its cell is clicked.
    rows = [i for i in range(len(c["id"])) if c["step"][i] > 0 and c["q"][i] > 0]
    best = max(rows, key=lambda i: (c["depth"][i], c["q"][i]))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1250})
        page.goto(Path(page_path).resolve().as_uri())
        page.wait_for_selector("body[data-ready='1']")
        cell = page.locator(f"rect.cell[data-cell='{c['cell'][best]}']")
        cell.click(force=True)
        page.wait_for_selector("#panel ol.attempts li")
        cell.hover(force=True)
        page.screenshot(path=png)
        browser.close()
    print(f"screenshot: {png} (elite {c['id'][best]}, depth {c['depth'][best]})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
