"""Random JSON at every route of a live server (a seeded generator, so a failure reproduces): no answer is a 5xx,
every 4xx is OpenAI's error shape (issue 32)."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
from llembed.serving import ServerSettings, create_app

from .conftest import running

ROUTES = ["/v1/embeddings", "/v1/search", "/v1/rerank"]
FIELDS = ["input", "model", "encoding_format", "dimensions", "input_type", "task", "query", "queries", "index",
          "k", "mode", "fusion", "weights", "documents", "top_n", "return_documents", "raw_scores"]  # fmt: skip
STRINGS = ["", " ", "a text", "\ud800 lone", "\udfff", "x" * 300, "dense+bm25", "hybrid", "weighted", "rrf", "bm25",
           "query", "document", "base64", "float", "tiny", "scifact", "\u0000", "é中文", "🙂"]  # fmt: skip


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice([0, -1, 1, 3, 10**6, 2**63, -(2**70)])
    if kind == 2:
        return rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf")])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return {"text": rng.choice(STRINGS)}
    if kind == 5:
        return [rng.choice(STRINGS) for _ in range(rng.randrange(4))]
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {
            rng.choice(FIELDS + ["dense", "bm25", "sparse"]): _value(rng, depth + 1) for _ in range(rng.randrange(3))
        }
    return [rng.randrange(-5, 70000) for _ in range(rng.randrange(1, 4))]


def _body(rng: random.Random) -> bytes:
    shape = rng.randrange(10)
    if shape == 0:  # not JSON, or JSON that is not an object
        return rng.choice([b"", b"{", b"[1,2]", b"null", b"\xff\xfe", b'"text"', b"7" * 5000, b"[" * 3000])
    data = {name: _value(rng) for name in rng.sample(FIELDS, rng.randrange(1, 6))}
    text = json.dumps(data, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def server(tiny_embedder, tmp_path_factory, corpus_file):
    path = build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path_factory.mktemp("f") / "sf",
                       sparse=True, show_progress_bar=False)  # fmt: skip
    settings = ServerSettings(max_texts_per_request=8, max_tokens_per_text=64, max_tokens_per_request=200)
    app = create_app({"tiny": tiny_embedder}, {"scifact": VectorIndex.load(path, tiny_embedder)}, settings)
    with running(app) as base:
        yield base


def test_random_json_never_gets_a_server_error(server):
    rng = random.Random(32)
    seen: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for number in range(400):
            route, body = rng.choice(ROUTES), _body(rng)
            response = client.post(server + route, content=body, headers={"content-type": "application/json"})
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (number, route, body[:300], response.text[:300])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["message"] and error["type"] != "server_error", (route, body[:300], error)
        for route in ("/", "/health", "/metrics", "/v1/models", "/v1/indexes", "/v1/nothing"):
            assert client.get(server + route).status_code < 500
    assert seen.get(200, 0) > 0 and seen.get(400, 0) > 100  # both answers were reached, not only one
