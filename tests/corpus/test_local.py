"""The single-process runner: vectors equal the library's, bad rows reported, resume skips finished shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llembed.corpus import ShardOptions, embed_corpus, read_manifest, read_vectors
from llembed.errors import InputError

from .conftest import kept_rows


def test_vectors_equal_the_library_and_bad_rows_are_reported(local_output, scifact_rows, tiny_corpus_embedder):
    out, summary = local_output
    data = read_vectors(out)
    # input order: a.jsonl's 36 good rows and its empty one, then sub/b.parquet's 24
    rows = kept_rows(scifact_rows)
    assert data.ids == [doc_id for doc_id, _ in rows]
    assert data.texts == [text for _, text in rows]
    embedder = tiny_corpus_embedder
    good = [text for _, text in scifact_rows]
    np.testing.assert_allclose(np.delete(data.vectors, 6, axis=0), embedder.encode_documents(good), atol=1e-5)
    # the empty row is the model's vector of an empty text (its prompt alone)
    empty = embedder.pool(["   "], [embedder.spec], side="document", strict=False)[embedder.spec]
    np.testing.assert_allclose(data.vectors[6], embedder.format(empty)[0], atol=1e-5)
    assert (summary.rows, summary.vectors, summary.errors, summary.shards) == (63, 61, 2, 5 + 3)
    assert (summary.empty, summary.truncated) == (1, 0)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["file"], e["line"]) for e in errors] == [("a.jsonl", 3), ("a.jsonl", 6)]
    written = json.loads((out / "summary.json").read_text())
    assert (written["vectors"], written["empty"]) == (61, 1)
    manifest = read_manifest(out)
    assert manifest["recipe_hash"] == tiny_corpus_embedder.recipe.digest()


def test_rerun_skips_finished_shards_and_redoes_missing_ones(local_output, tiny_recipe, corpus_dir):
    out, _ = local_output
    before = read_vectors(out)
    parts = sorted(out.glob("part-*.parquet"))
    untouched = {p: p.stat().st_mtime_ns for p in parts[2:]}
    for part in parts[:2]:
        part.unlink()
    summary = embed_corpus([corpus_dir], out, tiny_recipe, shard_rows=8, runner="local", show_progress_bar=False)
    assert summary.shards_skipped == len(parts) - 2
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())
    after = read_vectors(out)
    assert after.ids == before.ids
    np.testing.assert_array_equal(after.vectors, before.vectors)
    # nothing left to do: a third run writes nothing
    assert (
        embed_corpus(
            [corpus_dir], out, tiny_recipe, shard_rows=8, runner="local", show_progress_bar=False
        ).rows_this_run
        == 0
    )


def test_other_settings_on_the_same_folder_are_refused(local_output, tiny_recipe, corpus_dir):
    out, _ = local_output
    with pytest.raises(InputError, match="another recipe"):
        embed_corpus([corpus_dir], out, tiny_recipe.replace(pooling="mean"), shard_rows=8, runner="local")
    with pytest.raises(InputError, match="another --shard-rows"):
        embed_corpus([corpus_dir], out, tiny_recipe, shard_rows=9, runner="local")
    with pytest.raises(InputError, match="other options"):
        embed_corpus([corpus_dir], out, tiny_recipe, ShardOptions(sparse=True), shard_rows=8, runner="local")


def test_on_error_stop_names_the_row(tmp_path, corpus_dir, tiny_recipe):
    with pytest.raises(InputError, match=r"a.jsonl: line 3: not valid JSON"):
        embed_corpus(
            [corpus_dir], tmp_path / "out", tiny_recipe, ShardOptions(on_error="stop"), shard_rows=8, runner="local",
            show_progress_bar=False,
        )  # fmt: skip


def test_duplicate_ids_are_reported(tmp_path, tiny_recipe):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "d.jsonl").write_text('{"id": "x", "text": "one"}\n{"id": "x", "text": "two"}\n')
    summary = embed_corpus([tmp_path / "in"], tmp_path / "out", tiny_recipe, runner="local", show_progress_bar=False)
    assert summary.duplicate_ids == ["x"]


def test_sparse_columns_equal_the_library(tmp_path, corpus_dir, tiny_recipe, tiny_corpus_embedder, scifact_rows):
    out = tmp_path / "sparse"
    embed_corpus(
        [corpus_dir],
        out,
        tiny_recipe,
        ShardOptions(sparse=True),
        shard_rows=30,
        runner="local",
        show_progress_bar=False,
    )
    data = read_vectors(out)
    embedder = tiny_corpus_embedder
    pooled = embedder.pool([t for _, t in kept_rows(scifact_rows)], embedder.lexical_specs(), "document", strict=False)
    expected = embedder.sparse(pooled)
    assert data.sparse.shape == expected.shape
    np.testing.assert_allclose(data.sparse.toarray(), expected.toarray(), atol=1e-5)


def test_index_build_reads_the_output_folder(local_output, tmp_path, corpus_dir, tiny_corpus_embedder, scifact_rows):
    from llembed.index import VectorIndex, build_index
    from llembed.index.build import Corpus, build_index_from_vectors

    out, _ = local_output
    from_vectors = VectorIndex.load(build_index_from_vectors(out, tmp_path / "from-vectors"))
    direct = VectorIndex.load(
        build_index(
            tiny_corpus_embedder,
            Corpus(*map(list, zip(*kept_rows(scifact_rows), strict=True))),
            tmp_path / "direct",
            show_progress_bar=False,
        )  # fmt: skip
    )
    assert from_vectors.manifest["recipe_hash"] == direct.manifest["recipe_hash"]
    queries = ["vitamin D deficiency", "gene expression in cancer cells"]
    for a, b in zip(from_vectors.search(queries, k=5), direct.search(queries, k=5), strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)


def test_cli_embeds_and_index_build_accepts_the_folder(tmp_path, corpus_dir, tiny_model_dirs):
    from typer.testing import CliRunner

    from llembed.cli import app

    model = str(tiny_model_dirs["llama"])
    out = tmp_path / "cli-out"
    result = CliRunner().invoke(
        app,
        ["embed-corpus", str(corpus_dir / "a.jsonl"), str(out), "-m", model, "--runner", "local", "--shard-rows", "10"],
    )
    assert result.exit_code == 0, result.output
    assert "2 malformed rows skipped" in result.output and "a.jsonl" in result.output
    assert len(read_vectors(out).ids) == 37
    result = CliRunner().invoke(app, ["index", "build", str(out), "-o", str(tmp_path / "idx")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["count"] == 37
    result = CliRunner().invoke(app, ["embed-corpus", str(out)])
    assert result.exit_code == 2 and "at least one INPUT and the OUTPUT" in result.output
    result = CliRunner().invoke(app, ["embed-corpus", str(corpus_dir / "a.jsonl"), str(out), "-m", model,
                                      "--runner", "local", "--shard-rows", "11"])  # fmt: skip
    assert result.exit_code == 2 and "another --shard-rows" in result.output
