"""Index build and search against hand computations with the library's own vectors."""

import json

import numpy as np
import pytest

import llembed.index.build as build_module
from llembed.bm25 import BM25
from llembed.errors import InputError
from llembed.fusion import RRF_K
from llembed.index import VectorIndex, build_index
from llembed.index.build import read_corpus
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
    fused = sorted(_rrf_by_hand(dense, sparse).items(), key=lambda item: (-item[1], item[0]))[:3]
    hybrid = built.search(QUERIES[0], k=3, mode="hybrid", fusion="rrf")[0]
    assert [h.id for h in hybrid] == [ids[i] for i, _ in fused]
    assert [h.score for h in hybrid] == pytest.approx([score for _, score in fused])
    # the default: each channel min-max normalised over what it retrieved, half and half, absent = 0
    d, s = _normalised(dense), _normalised(sparse)
    mixed = {row: 0.5 * d.get(row, 0.0) + 0.5 * s.get(row, 0.0) for row in set(d) | set(s)}
    expected = sorted(mixed.items(), key=lambda item: (-item[1], item[0]))[:3]
    hybrid = built.search(QUERIES[0], k=3, mode="hybrid")[0]
    assert [h.id for h in hybrid] == [ids[i] for i, _ in expected]
    assert [h.score for h in hybrid] == pytest.approx([score for _, score in expected])


def _normalised(scores: dict[int, float]) -> dict[int, float]:
    low, high = min(scores.values()), max(scores.values())
    return {row: (value - low) / (high - low) for row, value in scores.items()}


def _rrf_by_hand(*channels: dict[int, float]) -> dict[int, float]:
    fused: dict[int, float] = {}
    for scores in channels:
        for rank, (row, _) in enumerate(sorted(scores.items(), key=lambda item: (-item[1], item[0])), start=1):
            fused[row] = fused.get(row, 0.0) + 1 / (RRF_K + rank)
    return fused


def test_bm25_and_dense_plus_bm25_follow_their_definitions(built, tiny_embedder, scifact_docs):
    ids, texts = list(scifact_docs), [t[:400] for t in scifact_docs.values()]
    assert built.channels == ("dense", "sparse", "bm25")
    assert built.modes == ("dense", "sparse", "bm25", "hybrid", "dense+sparse", "dense+bm25", "dense+sparse+bm25")
    bm25_scores = BM25.build(texts).scores(QUERIES[1:])[0]
    top = [int(i) for i in np.argsort(-bm25_scores, kind="stable")[:4]]
    hits = built.search(QUERIES[1], k=4, mode="bm25")[0]
    assert [h.id for h in hits] == [ids[i] for i in top]
    assert [h.score for h in hits] == pytest.approx(bm25_scores[top].tolist(), rel=1e-5)

    dense_scores = _brute_force(tiny_embedder, texts, QUERIES[1:])[0]
    depth = 40
    dense = {int(i): float(dense_scores[i]) for i in np.argsort(-dense_scores, kind="stable")[:depth]}
    lexical = {int(i): float(bm25_scores[i]) for i in np.argsort(-bm25_scores, kind="stable")[:depth]}
    lexical = {row: score for row, score in lexical.items() if score > 0}  # BM25 retrieves what shares a word
    fused = sorted(_rrf_by_hand(dense, lexical).items(), key=lambda item: (-item[1], item[0]))[:4]
    assert [h.id for h in built.search(QUERIES[1], 4, "dense+bm25", "rrf")[0]] == [ids[i] for i, _ in fused]
    d, b = _normalised(dense), _normalised(lexical)
    mixed = {row: 0.3 * d.get(row, 0.0) + 0.7 * b.get(row, 0.0) for row in set(d) | set(b)}
    expected = sorted(mixed.items(), key=lambda item: (-item[1], item[0]))[:4]
    weighted = built.search(QUERIES[1], 4, "dense+bm25", "weighted", {"dense": 0.3, "bm25": 0.7})[0]
    assert [h.id for h in weighted] == [ids[i] for i, _ in expected]
    assert [h.score for h in weighted] == pytest.approx([score for _, score in expected], abs=1e-6)


def test_bm25_alone_runs_no_forward_pass(built, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("BM25 alone must not embed the query")

    monkeypatch.setattr(built.embedder, "pool", refuse)
    assert built.search("white matter", k=2, mode="bm25")[0]


def test_an_index_without_bm25_says_so_and_can_be_given_it(tmp_path, tiny_embedder, corpus_file, built):
    plain = build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "p", bm25=False, show_progress_bar=False)
    index = VectorIndex.load(plain, tiny_embedder)
    assert index.modes == ("dense",) and not (plain / "bm25").exists()
    with pytest.raises(InputError, match="p has no bm25 part for mode 'dense\\+bm25' \\(build it without --no-bm25\\)"):
        index.search("x", mode="dense+bm25")
    build_module.add_bm25(plain)
    given = VectorIndex.load(plain, tiny_embedder)
    assert given.modes == ("dense", "bm25", "dense+bm25")
    assert [h.id for h in given.search(QUERIES, k=5, mode="bm25")[0]] == [
        h.id for h in built.search(QUERIES, k=5, mode="bm25")[0]
    ]


def test_hnsw_finds_the_exact_top_hits_on_a_small_corpus(tmp_path, tiny_embedder, corpus_file, built):
    hnsw = VectorIndex.load(
        build_index(tiny_embedder, read_corpus([corpus_file]), tmp_path / "h", kind="hnsw", show_progress_bar=False),
        tiny_embedder,
    )
    assert json.loads((hnsw.path / "manifest.json").read_text())["kind"] == "hnsw"
    assert [h.id for h in hnsw.search(QUERIES, k=3)[0]] == [h.id for h in built.search(QUERIES, k=3)[0]]
    with pytest.raises(InputError, match="has no sparse part for mode 'hybrid' \\(build it with --sparse\\)"):
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
