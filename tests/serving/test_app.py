"""The live server (uvicorn on 127.0.0.1) against the library: the OpenAI client, limits, errors, auth,
metrics, a slow client."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
from llembed.serving import ServerSettings, create_app

from .conftest import running

TEXTS = ["A man is playing a guitar.", "Two dogs run on the beach.", "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_embedder, corpus_file):
    path = build_index(
        tiny_embedder,
        read_corpus([corpus_file]),
        tmp_path_factory.mktemp("i") / "sf",
        sparse=True,
        show_progress_bar=False,
    )
    return VectorIndex.load(path, tiny_embedder)


@pytest.fixture(scope="module")
def server(tiny_embedder, index):
    settings = ServerSettings(
        max_texts_per_request=8, max_tokens_per_text=64, max_tokens_per_request=200, max_body_bytes=20_000
    )
    with running(create_app({"tiny": tiny_embedder}, {"scifact": index}, settings)) as base:
        yield base


def test_openai_client_gets_the_library_vectors_float_and_base64(server, tiny_embedder):
    from openai import OpenAI

    client = OpenAI(base_url=server + "/v1", api_key="unused")
    expected = tiny_embedder.encode(TEXTS)
    for encoding in ("float", "base64"):
        response = client.embeddings.create(input=TEXTS, model="tiny", encoding_format=encoding)
        if encoding == "base64":  # asked for explicitly, the client hands the strings over as they came
            got = np.stack([np.frombuffer(base64.b64decode(item.embedding), dtype="<f4") for item in response.data])
        else:
            got = np.array([item.embedding for item in response.data], dtype=np.float32)
        assert np.abs(got - expected).max() <= 1e-6, encoding
        assert [item.index for item in response.data] == [0, 1, 2]
    tokens = sum(len(ids) for ids in tiny_embedder.tokenizer(TEXTS, add_special_tokens=False)["input_ids"])
    assert (response.usage.prompt_tokens, response.usage.total_tokens, response.model) == (tokens, tokens, "tiny")
    # the client's default (no encoding_format) is base64 under the hood
    single = client.embeddings.create(input=TEXTS[0], model="tiny")
    assert np.abs(np.array(single.data[0].embedding) - expected[0]).max() <= 1e-6


def test_dimensions_token_ids_and_query_prompts(server, tiny_embedder):
    cut = httpx.post(server + "/v1/embeddings", json={"input": TEXTS, "dimensions": 16}).json()
    got = np.array([d["embedding"] for d in cut["data"]])
    assert got.shape == (3, 16)
    assert np.abs(got - tiny_embedder.replace(truncate_dim=16).encode(TEXTS)).max() <= 1e-6
    assert np.linalg.norm(got, axis=1) == pytest.approx(1.0, abs=1e-5)  # renormalised after the cut

    ids = tiny_embedder.tokenizer(TEXTS[:2], add_special_tokens=False)["input_ids"]
    by_ids = httpx.post(server + "/v1/embeddings", json={"input": ids}).json()
    assert np.abs(np.array([d["embedding"] for d in by_ids["data"]]) - tiny_embedder.encode(TEXTS[:2])).max() <= 1e-6
    assert by_ids["usage"]["prompt_tokens"] == sum(map(len, ids))
    one = httpx.post(server + "/v1/embeddings", json={"input": ids[0]}).json()
    assert len(one["data"]) == 1

    query = httpx.post(server + "/v1/embeddings", json={"input": TEXTS[:1], "input_type": "query"}).json()
    assert np.abs(np.array(query["data"][0]["embedding"]) - tiny_embedder.encode_queries(TEXTS[:1])[0]).max() <= 1e-6


def test_models_health_and_metrics(server):
    models = httpx.get(server + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    health = httpx.get(server + "/health").json()
    assert health == {"status": "ok", "models": ["tiny"], "indexes": ["scifact"], "rerankers": ["tiny"]}
    httpx.post(server + "/v1/embeddings", json={"input": ["metrics probe"]})
    text = httpx.get(server + "/metrics").text
    for name in (
        'llembed_requests_total{endpoint="/v1/embeddings",status="200"}',
        "llembed_request_latency_seconds_bucket",
        'llembed_batch_texts_count{model="tiny"}',
        'llembed_input_tokens_total{model="tiny"}',
        "llembed_queue_wait_seconds_bucket",
    ):
        assert name in text, name


def test_search_endpoint_matches_the_library(server, index):
    listed = httpx.get(server + "/v1/indexes").json()["data"][0]["modes"]
    assert listed == list(index.modes) and "dense+sparse+bm25" in listed
    asked = [(mode, "weighted", None) for mode in index.modes]
    asked += [("dense+bm25", "rrf", None), ("dense+sparse+bm25", "rrf", {"bm25": 2, "dense": 1})]
    for mode, fusion, weights in asked:
        request = {"query": "newborn brain white matter", "k": 4, "mode": mode, "fusion": fusion, "weights": weights}
        body = httpx.post(server + "/v1/search", json=request).json()
        expected = index.search("newborn brain white matter", 4, mode, fusion, weights)[0]
        assert [h["id"] for h in body["data"][0]["hits"]] == [h.id for h in expected], mode
        assert [h["score"] for h in body["data"][0]["hits"]] == pytest.approx([h.score for h in expected], abs=1e-5)
        assert body["mode"] == mode and body.get("fusion") == (fusion if "+" in mode or mode == "hybrid" else None)


def test_search_in_a_chunk_index_returns_the_best_passage(tmp_path, tiny_embedder, corpus_file):
    chunked = tiny_embedder.replace(chunking="late", chunk_tokens=32)
    path = build_index(chunked, read_corpus([corpus_file]), tmp_path / "chunks", chunks=True, show_progress_bar=False)
    index = VectorIndex.load(path, chunked)
    settings = ServerSettings(max_texts_per_request=8, max_tokens_per_text=64)
    with running(create_app({"tiny": chunked}, {"chunks": index}, settings)) as base:
        body = httpx.post(base + "/v1/search", json={"query": "newborn brain white matter", "k": 3}).json()
    expected = index.search("newborn brain white matter", k=3)[0]
    hits = body["data"][0]["hits"]
    assert [(h["id"], tuple(h["span"])) for h in hits] == [(h.id, h.span) for h in expected]
    assert all(h["passage"] == h["text"][h["span"][0] : h["span"][1]] for h in hits)


BAD_INPUTS = [
    (b'{"input": []}', 400, "input", "empty list"),
    (b'{"input": ""}', 400, "input", "input[0] is empty"),
    (b'{"input": ["ok", "   "]}', 400, "input", "input[1] is empty"),
    (b'{"input": 5}', 400, "input", "not int"),
    (b'{"input": ["a", 3]}', 400, "input", "input[1] is int"),
    (b'{"input": [[1, 2], "a"]}', 400, "input", "input[1] is str"),
    (b'{"input": [[]]}', 400, "input", "non-empty list of token ids"),
    (b'{"input": [1, 99999999]}', 400, "input", "outside this model's vocabulary"),
    (b'{"input": [true]}', 400, "input", "input[0] is bool"),
    (b'{"input": null}', 400, "input", "not NoneType"),
    (b'{"inputs": ["a"]}', 400, "input", "'input' is required"),
    (b'{"input": ["a"], "model": "gpt-4"}', 404, "model", "not served here"),
    (b'{"input": ["a"], "model": 3}', 400, "model", "must be a string"),
    (b'{"input": ["a"], "encoding_format": "int8"}', 400, "encoding_format", "'float' or 'base64'"),
    (b'{"input": ["a"], "dimensions": 0}', 400, "dimensions", "positive integer"),
    (b'{"input": ["a"], "dimensions": 100000}', 400, "dimensions", "at most 64"),
    (b'{"input": ["a"], "input_type": "image"}', 400, "input_type", "must be one of"),
    (json.dumps({"input": ["x"] * 9}).encode(), 400, "input", "at most 8 per request"),
    (json.dumps({"input": ["word " * 80]}).encode(), 400, "input", "at most 64 per text"),
    (json.dumps({"input": ["word " * 60] * 4}).encode(), 400, "input", "at most 200"),
    (b'{"input": ["caf\xe9"]}', 400, None, "not valid UTF-8"),
    (b'{"input": ["a"', 400, None, "not valid JSON"),
    (b"[1, 2]", 400, None, "must be a JSON object"),
    (b"", 400, None, "body is empty"),
    (b'{"input": "' + b"a" * 30_000 + b'"}', 413, None, "at most 20000"),
    (b'{"input": ' + b"[" * 9000 + b"]" * 9000 + b"}", 400, None, "nests JSON too deeply"),
    (b'{"input": ' + b"[" * 500 + b"1" + b"]" * 500 + b"}", 400, "input", "a non-empty list of token ids"),
    (b'{"input": "\\ud800 x"}', 400, None, "lone UTF-16 surrogate (\\ud800)"),
    (b'{"input": ["ok"], "task": "\\udfff"}', 400, None, "lone UTF-16 surrogate (\\udfff)"),
    (b'{"input": ' + b"7" * 5000 + b"}", 400, None, "a number llembed won't read"),
    (b'{"input": ["a"], "input_type": ["query"]}', 400, "input_type", "must be one of"),
    (b'{"input": ["a"], "input_type": {"side": "query"}}', 400, "input_type", "must be one of"),
]


@pytest.mark.parametrize(("body", "status", "param", "message"), BAD_INPUTS, ids=[m for *_, m in BAD_INPUTS])
def test_bad_input_gets_a_clear_4xx_in_openai_shape(server, body, status, param, message):
    response = httpx.post(server + "/v1/embeddings", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"]
    assert error["param"] == param
    assert error["type"] in ("invalid_request_error", "not_found_error")


def test_hostile_text_in_search_and_rerank_is_a_400(server):
    for route, body in (
        ("/v1/search", b'{"query": "\\ud800 x"}'),
        ("/v1/rerank", b'{"query": "capital", "documents": ["ok", "\\udbff"]}'),
        ("/v1/rerank", b'{"query": "\\ud800", "documents": ["ok"]}'),
    ):
        response = httpx.post(server + route, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (route, response.text)
        assert "lone UTF-16 surrogate" in response.json()["error"]["message"]


def test_a_server_fault_says_server_error():
    from llembed.serving.requests import RequestError

    assert RequestError(500, "internal server error").body()["error"]["type"] == "server_error"
    assert RequestError(503, "overloaded").body()["error"]["type"] == "server_error"
    assert RequestError(400, "bad").body()["error"]["type"] == "invalid_request_error"


def test_bad_search_requests(server):
    cases = [
        ({"query": ""}, 400, "query[0] is empty"),
        ({"query": "x", "k": 0}, 400, "'k' must be an integer"),
        ({"query": "x", "mode": "fuzzy"}, 400, "'mode' must be one of dense, sparse, bm25, hybrid"),
        ({"query": "x", "mode": ["dense"]}, 400, "'mode' must be one of"),
        ({"query": "x", "mode": "dense+bm25", "fusion": "max"}, 400, "'fusion' must be one of rrf, weighted"),
        ({"query": "x", "mode": "dense+bm25", "weights": [1, 2]}, 400, "'weights' must be an object"),
        ({"query": "x", "mode": "dense+bm25", "weights": {"sparse": 1}}, 400, "weights name 'sparse'"),
        ({"query": "x", "mode": "dense+bm25", "weights": {"bm25": "a lot"}}, 400, "weight of 'bm25' must be"),
        ({"query": "x", "index": "nope"}, 404, "not served here"),
        ({"k": 3}, 400, "'query' must be"),
    ]
    for body, status, message in cases:
        response = httpx.post(server + "/v1/search", json=body)
        assert response.status_code == status, body
        assert message in response.json()["error"]["message"]
    assert httpx.get(server + "/v1/nothing").json()["error"]["message"] == "Not Found"


def test_api_keys(tiny_embedder):
    settings = ServerSettings(api_keys=("k-1", "k-2"))
    with running(create_app({"tiny": tiny_embedder}, settings=settings)) as base:
        body = {"input": ["hello"]}
        assert httpx.post(base + "/v1/embeddings", json=body).status_code == 401
        wrong = httpx.post(base + "/v1/embeddings", json=body, headers={"Authorization": "Bearer k-3"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
        assert httpx.post(base + "/v1/embeddings", json=body, headers={"Authorization": "Basic k-1"}).status_code == 401
        for key in ("k-1", "k-2"):
            assert (
                httpx.post(base + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}).status_code
                == 200
            )
        assert httpx.get(base + "/v1/models").status_code == 401
        assert httpx.get(base + "/health").status_code == 200  # liveness probes need no key

        from openai import AuthenticationError, OpenAI

        with pytest.raises(AuthenticationError):
            OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).embeddings.create(input="x", model="tiny")
        ok = OpenAI(base_url=base + "/v1", api_key="k-2").embeddings.create(input="x", model="tiny")
        assert len(ok.data[0].embedding) == 64


def test_a_slow_client_blocks_nobody_and_times_out(tiny_embedder):
    settings = ServerSettings(body_timeout_s=5.0)
    with running(create_app({"tiny": tiny_embedder}, settings=settings)) as base:
        port = int(base.rsplit(":", 1)[1])
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"inp'
        )
        started = time.perf_counter()
        answers = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(httpx.post(base + "/v1/embeddings", json={"input": ["fast"]}))
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200] * 4
        assert time.perf_counter() - started < 5.0  # served while the slow body was still pending
        slow.settimeout(10)
        reply = b""
        while b"did not arrive" not in reply:  # headers and body may come in separate packets
            chunk = slow.recv(4096)
            if not chunk:
                break
            reply += chunk
        reply = reply.decode()
        slow.close()
        assert reply.startswith("HTTP/1.1 408")
        assert "did not arrive in time" in reply
