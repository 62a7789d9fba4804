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


def _wait(browser, attribute: str, value: str = "true"):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(attribute) == value)


def _compare(browser, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.ID, "texts")
    box.clear()
    if text:
        browser.execute_script("arguments[0].value = arguments[1];", box, text)  # pasting, not typing 500 lines
    browser.execute_script("document.body.dataset.compared = 'pending';")
    browser.find_element(By.ID, "compare").click()
    _wait(browser, "data-compared")


def test_compare_mode_works_with_no_index_and_shows_the_librarys_similarities(browser, tiny_embedder):
    import numpy as np
    from selenium.webdriver.common.by import By

    texts = ["A man is playing a guitar.", "Someone plays a guitar.", "Stocks fell on Monday.", "Cats sleep."]
    with running(create_app({"tiny": tiny_embedder})) as base:
        browser.get(base + "/")
        _wait(browser, "data-ready")
        assert browser.find_element(By.ID, "compare-panel").is_displayed()  # no index: compare is the first tab
        recipe = browser.find_element(By.ID, "recipe-model").text
        for part in ('model="', 'prompt="prompteol"', 'pooling="last"', 'dtype="float32"'):
            assert part in recipe, recipe
        _compare(browser, "\n".join(texts))
        cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap td")
        shown = np.array([float(c.get_attribute("data-value")) for c in cells]).reshape(4, 4)
        vectors = tiny_embedder.encode(texts)
        expected = tiny_embedder.similarity(vectors, vectors)
        assert np.abs(shown - expected).max() <= 1e-5
        upper = np.triu(expected, 1) - np.tril(np.ones((4, 4)))
        i, j = np.unravel_index(np.argmax(upper), upper.shape)
        assert browser.find_element(By.ID, "nearest").get_attribute("data-pair") == f"{i},{j}"
        browser.find_element(By.ID, "tab-search").click()
        hint = browser.find_element(By.ID, "no-index")
        assert hint.is_displayed() and "llembed serve --index" in hint.text and "--demo" in hint.text

        for text, message in (("", "at least two sentences"), ("\n".join(["a line"] * 500), "you pasted 500")):
            browser.find_element(By.ID, "tab-compare").click()
            _compare(browser, text)
            error = browser.find_element(By.ID, "compare-meta")
            assert error.get_attribute("class") == "error" and message in error.text
    # the server is gone now: the page says so instead of doing nothing
    _compare(browser, "\n".join(texts))
    assert "cannot reach the llembed server" in browser.find_element(By.ID, "compare-meta").text


def test_a_keyed_server_asks_for_the_key_on_the_page(browser, tiny_embedder):
    from selenium.webdriver.common.by import By

    from llembed.serving import ServerSettings

    with running(create_app({"tiny": tiny_embedder}, settings=ServerSettings(api_keys=("k-1",)))) as base:
        browser.get(base + "/")
        browser.execute_script("localStorage.removeItem('llembed-key');")
        browser.get(base + "/")
        _wait(browser, "data-ready")
        assert "needs an API key" in browser.find_element(By.ID, "compare-meta").text
        key = browser.find_element(By.ID, "api-key")
        key.send_keys("k-1")
        browser.execute_script(
            "document.body.dataset.ready = 'false'; arguments[0].dispatchEvent(new Event('change'));", key
        )
        _wait(browser, "data-ready")
        _compare(browser, "one text\nanother text")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#heatmap td")) == 4
        browser.execute_script("localStorage.removeItem('llembed-key');")


def test_serve_demo_builds_two_recipes_once_and_search_compares_them(browser, tmp_path, tiny_model_dirs, monkeypatch):
    from selenium.webdriver.common.by import By

    from llembed.index.demo import demo_queries
    from llembed.serving.assembly import AppSpec, build_app

    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path / "cache"))
    spec = AppSpec(model=str(tiny_model_dirs["llama"]), fields=(("dtype", "float32"), ("pooling", "last")), demo=True)
    app = build_app(spec)
    served = app.state.server.indexes
    assert list(served) == ["demo", "demo-mean"]  # the served recipe and its contrast, on one loaded backbone
    served_recipe, contrast = (served[name].index.embedder.recipe for name in served)
    assert (served_recipe.pooling, contrast.pooling, contrast.prompt) == ("last", "mean", "none")
    assert served["demo"].index.embedder.backbone is served["demo-mean"].index.embedder.backbone
    for entry in served.values():
        assert entry.index.channels == ("dense", "sparse", "bm25") and len(entry.index) == 143  # SciFact sample
    built = sorted((tmp_path / "cache" / "demo").iterdir())
    assert len(built) == 2
    stamps = [(folder / "manifest.json").stat().st_mtime_ns for folder in built]
    build_app(spec)  # a second start reuses both cached indexes
    assert [(folder / "manifest.json").stat().st_mtime_ns for folder in built] == stamps
    query = demo_queries()[0]
    with running(app) as base:
        browser.get(base + "/")
        _wait(browser, "data-ready")
        assert browser.find_element(By.ID, "search-panel").is_displayed()
        assert browser.find_element(By.ID, "index-right").get_attribute("value") == "demo-mean"
        assert 'pooling="mean"' in browser.find_element(By.ID, "recipe-right").text
        browser.find_element(By.ID, "query").send_keys(query)
        browser.find_element(By.ID, "search").click()
        _wait(browser, "data-done")
        for side, name in (("left", "demo"), ("right", "demo-mean")):
            items = browser.find_elements(By.CSS_SELECTOR, f"#hits-{side} li.hit")
            shown = [item.get_attribute("data-id") for item in items]
            assert shown == [hit.id for hit in served[name].index.search(query, k=5)[0]]
