"""One row per chunk: embed-corpus --chunks, chunk indexes and their search, against the library's own vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llembed.corpus import embed_corpus, read_vectors
from llembed.output import unit_rows

from .conftest import kept_rows

QUERIES = ["vitamin D deficiency", "gene expression in cancer cells"]


@pytest.fixture(scope="module")
def chunk_recipe(tiny_recipe):
    return tiny_recipe.replace(chunking="late", chunk_tokens=32, chunk_overlap=8)


@pytest.fixture(scope="module")
def chunk_embedder(chunk_recipe):
    from llembed import Embedder

    return Embedder.from_recipe(chunk_recipe)


@pytest.fixture(scope="module")
def chunk_output(tmp_path_factory, corpus_dir, chunk_recipe):
    out = tmp_path_factory.mktemp("chunks") / "out"
    summary = embed_corpus([corpus_dir], out, chunk_recipe, shard_rows=8, runner="local", show_progress_bar=False)
    from llembed.corpus.shards import ShardOptions

    assert summary.errors == 2
    chunked = embed_corpus(
        [corpus_dir], out.with_name("chunked"), chunk_recipe, ShardOptions(chunks=True), shard_rows=8,
        runner="local", show_progress_bar=False,
    )  # fmt: skip
    return out.with_name("chunked"), chunked


def test_embed_corpus_writes_one_row_per_chunk(chunk_output, chunk_embedder, scifact_rows):
    out, summary = chunk_output
    rows = kept_rows(scifact_rows)
    expected = chunk_embedder.encode_chunks([text for _, text in rows])
    data = read_vectors(out)
    assert summary.rows == len(rows) + 2 and summary.vectors == sum(len(c.spans) for c in expected) > len(rows)
    assert summary.duplicate_ids == []
    assert data.ids == [doc_id for (doc_id, _), c in zip(rows, expected, strict=True) for _ in c.spans]
    assert data.spans == [(n, a, b) for c in expected for n, (a, b) in enumerate(c.spans)]
    assert data.texts == [t for (_, text), c in zip(rows, expected, strict=True) for t in c.texts(text)]
    np.testing.assert_allclose(data.vectors, np.concatenate([c.vectors for c in expected]), atol=1e-5)


def test_a_chunk_index_returns_each_document_once_at_its_best_chunk(tmp_path, chunk_embedder, scifact_rows):
    from llembed.index import VectorIndex, build_index
    from llembed.index.build import Corpus

    rows = kept_rows(scifact_rows)
    texts = [text for _, text in rows]
    index = VectorIndex.load(
        build_index(
            chunk_embedder, Corpus([i for i, _ in rows], texts), tmp_path / "idx", chunks=True, show_progress_bar=False
        ),  # fmt: skip
        chunk_embedder,
    )
    chunks = chunk_embedder.encode_chunks(texts)
    assert index.rows == sum(len(c.spans) for c in chunks) and len(index) == len(rows)
    queries = unit_rows(chunk_embedder.encode_queries(QUERIES))
    for query, hits in zip(queries, index.search(QUERIES, k=5), strict=True):
        best = []  # by hand: each document's best chunk (MaxP), documents by that score
        for number, c in enumerate(chunks):
            scores = unit_rows(c.vectors) @ query
            best.append((float(scores.max()), number, c.spans[int(scores.argmax())]))
        best.sort(key=lambda item: -item[0])
        assert [h.id for h in hits] == [rows[n][0] for _, n, _ in best[:5]]
        assert [h.score for h in hits] == pytest.approx([s for s, _, _ in best[:5]], abs=1e-5)
        assert [h.span for h in hits] == [span for _, _, span in best[:5]]
        assert hits[0].passage == texts[best[0][1]][best[0][2][0] : best[0][2][1]]
        assert hits[0].to_dict()["passage"] == hits[0].passage


def test_an_index_of_a_chunked_output_equals_the_direct_one(tmp_path, chunk_output, chunk_embedder, scifact_rows):
    from llembed.index import VectorIndex, build_index
    from llembed.index.build import Corpus, build_index_from_vectors

    out, _ = chunk_output
    rows = kept_rows(scifact_rows)
    from_vectors = VectorIndex.load(build_index_from_vectors(out, tmp_path / "from-vectors"), chunk_embedder)
    direct = VectorIndex.load(
        build_index(
            chunk_embedder,
            Corpus(*map(list, zip(*rows, strict=True))),
            tmp_path / "direct",
            chunks=True,
            show_progress_bar=False,
        ),  # fmt: skip
        chunk_embedder,
    )
    assert from_vectors.ids == direct.ids
    assert from_vectors.texts == direct.texts  # documents laid back together from their chunks
    for a, b in zip(from_vectors.search(QUERIES, k=5), direct.search(QUERIES, k=5), strict=True):
        assert [(h.id, h.span) for h in a] == [(h.id, h.span) for h in b]


def test_cli_chunk_index_and_search(tmp_path, corpus_dir, tiny_model_dirs):
    from typer.testing import CliRunner

    from llembed.cli import app

    model = str(tiny_model_dirs["llama"])
    result = CliRunner().invoke(
        app,
        ["index", "build", str(corpus_dir / "sub"), "-o", str(tmp_path / "idx"), "-m", model, "--dtype", "float32",
         "--chunks", "--chunk-tokens", "24", "--chunking", "mean"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["chunks"] and manifest["documents"] == 24 and manifest["count"] > 24
    result = CliRunner().invoke(app, ["search", str(tmp_path / "idx"), "vitamin D", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout.strip().splitlines()[-1])["hits"]
    assert len(hits) == 2 and all(h["passage"] == h["text"][h["span"][0] : h["span"][1]] for h in hits)
    result = CliRunner().invoke(
        app, ["index", "build", str(corpus_dir / "sub"), "-o", str(tmp_path / "bad"), "-m", model, "--chunks",
              "--chunk-tokens", "9999"],
    )  # fmt: skip
    assert result.exit_code == 2 and "chunk_tokens=9999 is larger than the model's window" in result.output
    assert not (tmp_path / "bad").exists()
