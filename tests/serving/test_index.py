"""Index build and search against hand computations with the library's own vectors."""

import json

import numpy as np
import pytest

import llembed.index.build as build_module
from llembed.errors import InputError
from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
from llembed.index.fusion import fuse
from llembed.output import unit_rows


class Killed(Exception):
    pass


QUERIES = ["white matter development in newborns", "genetic variation and disease risk"]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_embedder, corpus_file):
    out = tmp_path_factory.mktemp("idx") / "scifact"
    build_index(tiny_embedder, read_corpus([corpus_file]), out, sparse=True, show_progress_bar=False)
    return VectorIndex.load(out, tiny_embedder)


def _brute_force(embedder, texts, queries):
    docs = unit_rows(embedder.encode_documents(texts))
    qs = unit_rows(embedder.encode_queries(queries))
    return qs @ docs.T


def test_dense_search_is_exact_cosine_ranking(built, tiny_embedder, scifact_docs):
    ids, texts = list(scifact_docs), [t[:400] for t in scifact_docs.values()]
    scores = _brute_force(tiny_embedder, texts, QUERIES)
    found = built.search(QUERIES, k=5)
    for row, hits in zip(scores, found, strict=True):
        expected = np.argsort(-row, kind="stable")[:5]
        assert [h.id for h in hits] == [ids[i] for i in expected]
        assert [h.score for h in hits] == pytest.approx(row[expected].tolist(), abs=1e-5)
        assert hits[0].text == texts[expected[0]]
    manifest = json.loads((built.path / "manifest.json").read_text())
    assert (manifest["kind"], manifest["count"], manifest["sparse"]) == ("flat", 60, True)


def test_sparse_and_hybrid_follow_their_definitions(built, tiny_embedder, scifact_docs):
    ids, texts = list(scifact_docs), [t[:400] for t in scifact_docs.values()]
    lexical_docs = tiny_embedder.encode_sparse(texts, side="document")
    lexical_q = tiny_embedder.encode_sparse(QUERIES[:1], side="query")
    sparse_scores = (lexical_q @ lexical_docs.T).toarray()[0]
    hits = built.search(QUERIES[0], k=3, mode="sparse")[0]
    top = np.argsort(-sparse_scores, kind="stable")[:3]
    assert [h.id for h in hits] == [ids[i] for i in top]
    assert [h.score for h in hits] == pytest.approx(sparse_scores[top].tolist(), rel=1e-4)

    dense_scores = _brute_force(tiny_embedder, texts, QUERIES[:1])[0]
    depth = 30  # k · CANDIDATES_PER_HIT
    dense = {int(i): float(dense_scores[i]) for i in np.argsort(-dense_scores, kind="stable")[:depth]}
    sparse = {int(i): float(sparse_scores[i]) for i in np.argsort(-sparse_scores, kind="stable")[:depth]}
    fused = sorted(fuse(dense, sparse).items(), key=lambda item: (-item[1], item[0]))[:3]
    hybrid = built.search(QUERIES[0], k=3, mode="hybrid")[0]
    assert [h.id for h in hybrid] == [ids[i] for i, _ in fused]


def test_fusion_by_hand():
    fused = fuse({0: 0.9, 1: 0.5, 2: 0.1}, {1: 10.0, 3: 2.0})
    # dense min-max: 0 → 1, 1 → 0.5, 2 → 0; sparse: 1 → 1, 3 → 0; absent = 0
    assert fused == pytest.approx({0: 0.5, 1: 0.75, 2: 0.0, 3: 0.0})


def test_hnsw_finds_the_exact_top_hits_on_a_small_corpus(tmp_path, tiny_embedder, corpus_file, built):
    hnsw = VectorIndex.load(
        build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "h", kind="hnsw", show_progress_bar=False),
        tiny_embedder,
    )
    assert json.loads((hnsw.path / "manifest.json").read_text())["kind"] == "hnsw"
    assert [h.id for h in hnsw.search(QUERIES, k=3)[0]] == [h.id for h in built.search(QUERIES, k=3)[0]]
    with pytest.raises(InputError, match="no sparse index"):
        hnsw.search("x", mode="hybrid")


def test_a_killed_build_resumes_from_its_finished_chunks(tmp_path, tiny_embedder, corpus_file, built, monkeypatch):
    monkeypatch.setattr(build_module, "CHUNK_ROWS", 16)
    corpus = read_corpus([corpus_file])
    calls = []
    real_pool = tiny_embedder.pool

    def pool(texts, *args, **kwargs):
        calls.append(len(texts))
        if len(calls) == 3 and kill:
            raise Killed  # killed while embedding the third chunk
        return real_pool(texts, *args, **kwargs)

    monkeypatch.setattr(tiny_embedder, "pool", pool)
    kill = True
    with pytest.raises(Killed):
        build_index(tiny_embedder, corpus, tmp_path / "r", sparse=True, show_progress_bar=False)
    assert not (tmp_path / "r").exists()  # nothing half-written where the index goes
    assert len(list((tmp_path / "r.partial").glob("dense-*.npy"))) == 2
    calls.clear()
    kill = False
    build_index(tiny_embedder, corpus, tmp_path / "r", sparse=True, show_progress_bar=False)
    assert calls == [16, 12]  # only chunks 3 and 4 (rows 32–59) were embedded again
    assert not (tmp_path / "r.partial").exists()
    resumed = VectorIndex.load(tmp_path / "r", tiny_embedder)
    a, b = resumed.search(QUERIES, k=10, mode="hybrid"), built.search(QUERIES, k=10, mode="hybrid")
    assert [[h.id for h in x] for x in a] == [[h.id for h in x] for x in b]


def test_bad_corpora_and_mismatched_recipes_are_named(tmp_path, tiny_embedder, built):
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="duplicate document id 'a'"):
        read_corpus([dup])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="bad.jsonl:2"):
        read_corpus([bad])
    with pytest.raises(InputError, match="another recipe"):
        VectorIndex.load(built.path, tiny_embedder.replace(pooling="mean"))
    with pytest.raises(InputError, match="not an llembed index"):
        VectorIndex.load(tmp_path)
