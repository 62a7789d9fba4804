"""The web playground in a real headless Chromium (selenium + Debian's chromium-driver, installed by
scripts/setup.sh): type a query, check the hits shown on both sides equal the library's search."""

from __future__ import annotations

import shutil

import pytest

from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
from llembed.serving import create_app

from .conftest import running

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER and CHROMIUM), reason="needs chromium + chromedriver (scripts/setup.sh installs them as root)"
)
QUERY = "cerebral white matter in newborn infants"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_query_shows_the_top_hits_of_two_recipes_side_by_side(browser, tmp_path, tiny_embedder, corpus_file):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    corpus = read_corpus([corpus_file])
    last = build_index(tiny_embedder, corpus, tmp_path / "last", sparse=True, show_progress_bar=False)
    mean_embedder = tiny_embedder.replace(pooling="mean")
    mean = build_index(mean_embedder, corpus, tmp_path / "mean", show_progress_bar=False)
    indexes = {"last": VectorIndex.load(last, tiny_embedder), "mean": VectorIndex.load(mean, mean_embedder)}
    with running(create_app({"tiny": tiny_embedder}, indexes)) as base:
        browser.get(base + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "index-right").get_attribute("value") == "mean"
        box = browser.find_element(By.ID, "query")
        box.send_keys(QUERY)
        browser.find_element(By.ID, "k").clear()
        browser.find_element(By.ID, "k").send_keys("4")
        browser.find_element(By.ID, "search").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "true")
        for side, name in (("left", "last"), ("right", "mean")):
            shown = browser.find_elements(By.CSS_SELECTOR, f"#hits-{side} li.hit")
            expected = indexes[name].search(QUERY, k=4)[0]
            assert [item.get_attribute("data-id") for item in shown] == [h.id for h in expected]
            scores = [float(item.find_element(By.CLASS_NAME, "score").text) for item in shown]
            assert scores == pytest.approx([round(h.score, 4) for h in expected], abs=1.5e-4)
            assert shown[0].find_element(By.CLASS_NAME, "text").text == expected[0].text.strip()
        # the two recipes really differ, so the comparison shows something
        assert [h.id for h in indexes["last"].search(QUERY, k=4)[0]] != [
            h.id for h in indexes["mean"].search(QUERY, k=4)[0]
        ]


def test_the_rerank_toggle_shows_the_rerankers_order(browser, tmp_path, tiny_embedder, corpus_file):
    import math

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from llembed import Reranker
    from llembed.index import rerank_hits

    path = build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "last", show_progress_bar=False)
    index = VectorIndex.load(path, tiny_embedder)
    with running(create_app({"tiny": tiny_embedder}, {"last": index})) as base:
        browser.get(base + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert browser.find_element(By.ID, "reranker").get_attribute("value") == "tiny"
        browser.find_element(By.ID, "rerank").click()
        browser.find_element(By.ID, "rerank-top").clear()
        browser.find_element(By.ID, "rerank-top").send_keys("8")
        browser.find_element(By.ID, "query").send_keys(QUERY)
        browser.find_element(By.ID, "k").clear()
        browser.find_element(By.ID, "k").send_keys("3")
        browser.find_element(By.ID, "search").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == "true")
        shown = browser.find_elements(By.CSS_SELECTOR, "#hits-left li.hit")
        expected = rerank_hits(Reranker.of(tiny_embedder), QUERY, index.search(QUERY, k=8)[0], 3)
        assert [item.get_attribute("data-id") for item in shown] == [h.id for h in expected]
        scores = [float(item.find_element(By.CLASS_NAME, "score").text) for item in shown]
        assert scores == pytest.approx([1 / (1 + math.exp(-h.score)) for h in expected], abs=1.5e-4)
        moved = [item.find_element(By.CLASS_NAME, "moved").text for item in shown]
        assert moved == [f"search #{h.retrieval_rank}" for h in expected]
        assert "reranked by tiny" in browser.find_element(By.ID, "meta-left").text
