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
    models = {m["id"]: m["rerank"] for m in httpx.get(server + "/v1/models").json()["data"]}
    assert models == {"tiny": True, "judge": True}


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
