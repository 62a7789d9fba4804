"""The README's playground screenshots, taken in headless Chromium against ``llembed serve --demo`` on the default
model: the compare-texts mode and a demo search with its top 20 reranked.

    .venv/bin/python scripts/screenshots.py            # writes docs/playground-compare.png, docs/playground-search.png
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays a guitar.",
    "A woman slices tomatoes in a small kitchen.",
    "The stock market fell sharply on Monday.",
    "Shares dropped after the announcement.",
    "Cats sleep most of the day.",
]
QUERY = "Synaptic activity enhances release of BDNF"


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from llembed.serving.assembly import AppSpec, build_app
    from tests.serving.conftest import running

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    wait = WebDriverWait(browser, 120)

    def body_says(attribute: str) -> None:
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(attribute) == "true")

    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    try:
        with running(build_app(AppSpec(demo=True))) as base:
            browser.get(base + "/")
            body_says("data-ready")
            browser.find_element(By.ID, "tab-compare").click()
            box = browser.find_element(By.ID, "texts")
            browser.execute_script("arguments[0].value = arguments[1];", box, "\n".join(SENTENCES))
            browser.execute_script("document.body.dataset.compared = 'pending';")
            browser.find_element(By.ID, "compare").click()
            body_says("data-compared")
            browser.save_screenshot(str(out / "playground-compare.png"))
            browser.find_element(By.ID, "tab-search").click()
            browser.find_element(By.ID, "query").send_keys(QUERY)
            browser.find_element(By.ID, "rerank").click()
            browser.execute_script("document.body.dataset.done = 'pending';")
            browser.find_element(By.ID, "search").click()
            body_says("data-done")
            browser.save_screenshot(str(out / "playground-search.png"))
    finally:
        browser.quit()
    print(f"wrote {out / 'playground-compare.png'} and {out / 'playground-search.png'}")


if __name__ == "__main__":
    main()
