"""``/v1/rerank`` through a real uvicorn server and a real HTTP client, against the library's :class:`Reranker`."""

from __future__ import annotations

import math
import threading

import httpx
import pytest

from llembed import Embedder, Recipe, Reranker
from llembed.serving import ServerSettings, create_app

from .conftest import running

QUERY = "What causes the loss of white matter in newborn brains?"


@pytest.fixture(scope="module")
def documents(scifact_docs):
    return [text[:300] for text in list(scifact_docs.values())[:5]]


@pytest.fixture(scope="module")
def server(tiny_embedder, tiny_backbones):
    settings = ServerSettings(max_documents_per_rerank=5, max_tokens_per_text=80, max_tokens_per_request=400)
    judge = Reranker(tiny_backbones["qwen2"], Recipe(rerank_prompt="plain", truncation=True))
    with running(create_app({"tiny": tiny_embedder}, settings=settings, rerankers={"judge": judge})) as base:
        yield base


def test_rerank_equals_the_library_in_the_jina_cohere_schema(server, tiny_embedder, documents):
    library = Reranker.of(tiny_embedder).score(QUERY, documents)
    body = httpx.post(server + "/v1/rerank", json={"model": "tiny", "query": QUERY, "documents": documents}).json()
    order = sorted(range(len(library)), key=lambda i: -library[i])
    assert [hit["index"] for hit in body["results"]] == order
    expected = [1 / (1 + math.exp(-library[i])) for i in order]
    assert [hit["relevance_score"] for hit in body["results"]] == pytest.approx(expected, abs=1e-5)
    assert "document" not in body["results"][0]
    assert body["model"] == "tiny" and body["usage"]["total_tokens"] > 0
    objects = [{"text": text} for text in documents]
    request = {"model": "tiny", "query": QUERY, "documents": objects, "top_n": 2, "return_documents": True}
    top = httpx.post(server + "/v1/rerank", json=request | {"raw_scores": True}).json()["results"]
    assert [hit["index"] for hit in top] == order[:2]
    assert [hit["relevance_score"] for hit in top] == pytest.approx([library[i] for i in order[:2]], abs=1e-5)
    assert [hit["document"]["text"] for hit in top] == [documents[i] for i in order[:2]]


def test_the_named_reranker_is_the_default_and_models_say_who_reranks(server, tiny_backbones, documents):
    judge = Reranker(tiny_backbones["qwen2"], Recipe(rerank_prompt="plain", truncation=True))
    body = httpx.post(server + "/v1/rerank", json={"query": QUERY, "documents": documents, "raw_scores": True}).json()
    assert body["model"] == "judge"
    scores = {hit["index"]: hit["relevance_score"] for hit in body["results"]}
    assert [scores[i] for i in range(len(documents))] == pytest.approx(judge.score(QUERY, documents), abs=1e-5)
    listing = httpx.get(server + "/v1/models").json()
    assert {m["id"]: m["rerank"] for m in listing["data"]} == {"tiny": True, "judge": True}
    assert listing["reranker"] == {"default": "judge", "zero_shot": False, "calibrated": False, "prompt": "plain",
                                   "all": ["judge", "tiny"]}  # fmt: skip


def test_concurrent_requests_get_their_own_scores(server, tiny_embedder, documents):
    reranker = Reranker.of(tiny_embedder)
    queries = [QUERY, "Do vitamins prevent cancer?", QUERY, "How do neurons grow?"]
    expected = [reranker.score(q, documents[:3]) for q in queries]
    answers: dict[int, list[float]] = {}

    def ask(i: int) -> None:
        body = {"model": "tiny", "query": queries[i], "documents": documents[:3], "raw_scores": True}
        results = httpx.post(server + "/v1/rerank", json=body, timeout=60).json()["results"]
        answers[i] = [next(h["relevance_score"] for h in results if h["index"] == d) for d in range(3)]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, scores in enumerate(expected):
        assert answers[i] == pytest.approx(scores, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ({"documents": ["a"]}, 400, "query", "'query' is required"),
        ({"query": " ", "documents": ["a"]}, 400, "query", "non-empty string"),
        ({"query": "q"}, 400, "documents", "'documents' is required"),
        ({"query": "q", "documents": []}, 400, "documents", "non-empty list"),
        ({"query": "q", "documents": ["a"] * 6}, 400, "documents", "6 items; at most 5"),
        ({"query": "q", "documents": ["a", 3]}, 400, "documents", "documents[1] must be a string"),
        ({"query": "q", "documents": ["a", {"txt": "b"}]}, 400, "documents", "documents[1] must be a string"),
        ({"query": "q", "documents": ["a", ""]}, 400, "documents", "documents[1] is empty"),
        ({"query": "q", "documents": ["word " * 99 + "word"]}, 400, "documents", "documents[0] has 100 tokens"),
        ({"query": "q", "documents": ["word " * 79] * 5}, 400, "documents", "at most 400"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n", "positive integer"),
        ({"query": "q", "documents": ["a"], "return_documents": "yes"}, 400, "return_documents", "true or false"),
        ({"query": "q", "documents": ["a"], "model": "nope"}, 404, "model", "reranker 'nope' is not served"),
    ],
)
def test_bad_rerank_requests_get_a_clear_4xx(server, body, status, param, message):
    response = httpx.post(server + "/v1/rerank", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param and message in error["message"], error


def test_a_server_of_encoders_says_how_to_get_a_reranker(tiny_embedder):
    encoder = Embedder.from_pretrained("all-minilm-l6-v2")
    with running(create_app({"minilm": encoder})) as base:
        response = httpx.post(base + "/v1/rerank", json={"query": "q", "documents": ["a"]})
    assert response.status_code == 404
    assert "--reranker MODEL" in response.json()["error"]["message"]


def test_a_served_models_own_answer_is_marked_zero_shot(tiny_embedder):
    with running(create_app({"tiny": tiny_embedder})) as base:
        listing = httpx.get(base + "/v1/models").json()
    assert listing["reranker"]["default"] == "tiny" and listing["reranker"]["zero_shot"] is True


def test_without_self_rerank_a_served_model_does_not_answer_zero_shot(tiny_embedder, tiny_backbones, documents):
    judge = Reranker(
        tiny_backbones["qwen2"], Recipe(rerank_prompt="plain", truncation=True, rerank_calibration=[0.5, 1])
    )
    app = create_app({"tiny": tiny_embedder}, rerankers={"judge": judge}, self_rerank=False)
    with running(app) as base:
        listing = httpx.get(base + "/v1/models").json()
        named = httpx.post(base + "/v1/rerank", json={"model": "tiny", "query": QUERY, "documents": documents})
        default = httpx.post(base + "/v1/rerank", json={"query": QUERY, "documents": documents}).json()
    assert {m["id"]: m["rerank"] for m in listing["data"]} == {"tiny": False, "judge": True}
    assert listing["reranker"] == {"default": "judge", "zero_shot": False, "calibrated": True, "prompt": "plain",
                                   "all": ["judge"]}  # fmt: skip
    assert named.status_code == 404
    assert "'tiny' serves embeddings here, not reranking" in named.json()["error"]["message"]
    assert "--reranker self" in named.json()["error"]["message"]
    raw = judge.score(QUERY, documents)  # relevance_score is the calibrated probability
    expected = {i: 1 / (1 + math.exp(-(0.5 * s + 1))) for i, s in enumerate(raw)}
    assert {hit["index"]: hit["relevance_score"] for hit in default["results"]} == pytest.approx(expected, abs=1e-5)


def test_serve_picks_the_shipped_reranker_unless_told_otherwise(monkeypatch):
    from llembed import model_sources
    from llembed.serving.assembly import reranker_choice

    assert reranker_choice("self") == "self" and reranker_choice("none") == reranker_choice(None) == "none"
    assert reranker_choice("my-run") == "my-run"
    shipped = model_sources.DEFAULT_RERANKER in model_sources.TUNED_MODELS
    assert reranker_choice("auto") == (model_sources.DEFAULT_RERANKER if shipped else "self")
    monkeypatch.setitem(model_sources.TUNED_MODELS, model_sources.DEFAULT_RERANKER, object())
    assert reranker_choice("auto") == model_sources.DEFAULT_RERANKER
