"""A multi-vector index: built from every document's token (or chunk) vectors, searched by MaxSim, against the
library's own multi-vectors and MaxSim computed by hand."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed.cli import app
from llembed.errors import InputError
from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
from llembed.multivector import embed_multivector, maxsim

QUERIES = ["white matter development in newborns", "genetic variation and disease risk"]


@pytest.fixture(scope="module")
def token_index(tmp_path_factory, tiny_embedder, corpus_file):
    out = tmp_path_factory.mktemp("mv") / "tokens"
    build_index(tiny_embedder, read_corpus([corpus_file]), out, multivector="token", show_progress_bar=False)
    return VectorIndex.load(out, tiny_embedder)


def test_multivector_search_is_exact_maxsim_over_the_candidates(token_index, tiny_embedder, scifact_docs):
    ids, texts = list(scifact_docs), [t[:400] for t in scifact_docs.values()]
    documents = embed_multivector(tiny_embedder, texts, "token")
    queries = embed_multivector(tiny_embedder, QUERIES, "token", side="query")
    scores = maxsim(queries, documents)
    manifest = json.loads((token_index.path / "manifest.json").read_text())
    assert manifest["multivector"] == {"unit": "token", "pool_factor": 1} and manifest["count"] == len(
        documents.vectors
    )
    assert token_index.channels == ("multivector",) and token_index.modes == ("multivector",)
    found = token_index.search(QUERIES, k=5, mode="multivector")
    for row, hits in zip(scores, found, strict=True):
        # 60 documents of ~90 tokens: every document is a candidate (64 rows per query vector), so exact
        expected = np.argsort(-row, kind="stable")[:5]
        assert [h.id for h in hits] == [ids[i] for i in expected]
        assert [h.score for h in hits] == pytest.approx(row[expected].tolist(), abs=1e-5)
        top = int(expected[0])
        d, q = documents.text(top), queries.text(found.index(hits))
        best = int(np.argmax((d @ q.T).max(axis=1)))  # the document token that matched a query token best
        assert hits[0].span == tuple(documents.text_spans(top)[best].tolist())
        assert hits[0].passage == texts[top][slice(*hits[0].span)]


def test_pooled_chunk_index_and_bad_requests(tmp_path, token_index, tiny_embedder, corpus_file):
    out = tmp_path / "pooled"
    build_index(tiny_embedder, read_corpus([corpus_file]), out, multivector="token", pool_factor=3,
                show_progress_bar=False)  # fmt: skip
    pooled = VectorIndex.load(out, tiny_embedder)
    assert pooled.rows < token_index.rows / 2.5  # about a third of the vectors
    assert len(pooled.search(QUERIES[0], k=3, mode="multivector")[0]) == 3
    dense = tmp_path / "dense"
    build_index(tiny_embedder, read_corpus([corpus_file]), dense, show_progress_bar=False)
    with pytest.raises(InputError, match="no multivector part for mode 'multivector'.*--multivector token"):
        VectorIndex.load(dense, tiny_embedder).search(QUERIES[0], mode="multivector")
    with pytest.raises(InputError, match="no dense part"):
        token_index.search(QUERIES[0], mode="dense")
    with pytest.raises(InputError, match="multivector must be one of chunk, token"):
        build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "x", multivector="word")
    with pytest.raises(InputError, match="leave out --sparse and --chunks"):
        build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "x", multivector="token", sparse=True)
    with pytest.raises(InputError, match="only for a multi-vector index"):
        build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "x", pool_factor=2)


def test_the_commands(tmp_path, tiny_model_dirs, corpus_file):
    runner = CliRunner()
    model = str(tiny_model_dirs["llama"])
    out = tmp_path / "idx"
    built = runner.invoke(app, ["index", "build", str(corpus_file), "-o", str(out), "-m", model,
                                "--multivector", "chunk"])  # fmt: skip
    assert built.exit_code == 0, built.output
    found = runner.invoke(app, ["search", str(out), QUERIES[0], "--mode", "multivector", "--json", "-k", "2"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout.strip().splitlines()[-1])["hits"]
    assert len(hits) == 2 and all("passage" in hit for hit in hits)
    plain = runner.invoke(app, ["search", str(out), QUERIES[0], "--json", "-k", "2"])  # its own mode by default
    assert plain.exit_code == 0 and json.loads(plain.stdout.strip().splitlines()[-1])["hits"] == hits
    refused = runner.invoke(app, ["search", str(out), QUERIES[0], "--mode", "dense"])
    assert refused.exit_code == 2 and "no dense part" in refused.output


def test_the_server_searches_a_multivector_index_by_default_mode(token_index, tiny_embedder):
    import httpx

    from llembed.serving import ServerSettings, create_app

    from .conftest import running

    settings = ServerSettings(max_texts_per_request=8, max_tokens_per_text=64)
    with running(create_app({"tiny": tiny_embedder}, {"tokens": token_index}, settings, self_rerank=False)) as base:
        body = httpx.post(base + "/v1/search", json={"query": QUERIES, "k": 3}).json()
        listed = httpx.get(base + "/v1/indexes").json()["data"][0]["modes"]
        refused = httpx.post(base + "/v1/search", json={"query": QUERIES[0], "mode": "dense"})
    expected = token_index.search(QUERIES, k=3, mode="multivector")
    assert body["mode"] == "multivector" and listed == ["multivector"]
    for got, hits in zip(body["data"], expected, strict=True):
        assert [(h["id"], tuple(h["span"])) for h in got["hits"]] == [(h.id, h.span) for h in hits]
        assert [h["score"] for h in got["hits"]] == pytest.approx([h.score for h in hits], abs=1e-5)
    assert refused.status_code == 400 and "no dense part" in refused.json()["error"]["message"]
