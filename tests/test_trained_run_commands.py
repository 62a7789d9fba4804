"""A `llembed train` run folder works as ``-m`` in every command, through the one resolver."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed import Embedder
from llembed.cli import app

from .conftest import SENTENCES

runner = CliRunner()


@pytest.fixture(scope="module")
def tuned(trained_run):
    return Embedder.from_pretrained(str(trained_run))


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_embed(tmp_path, trained_run, tuned):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    _ok(["embed", str(texts), "-o", str(tmp_path / "v.npy"), "-m", str(trained_run)])
    assert np.allclose(np.load(tmp_path / "v.npy"), tuned.encode(SENTENCES), atol=1e-6)


def test_eval(tmp_path, trained_run, tuned):
    from llembed.evaluation.datasets import load_dataset
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.tasks import make_task

    data = tmp_path / "sts.jsonl"
    pairs = [(SENTENCES[0], SENTENCES[1], 4.5), (SENTENCES[0], SENTENCES[2], 0.5), (SENTENCES[3], SENTENCES[4], 1.0)]
    data.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in pairs))
    result = _ok(["eval", "--data", str(data), "-m", str(trained_run), "--format", "json"])
    scores = json.loads(result.stdout)["results"][0]["scores"]
    expected = evaluate(tuned, make_task(load_dataset(data)))[0].scores
    assert scores["main"] == pytest.approx(expected["main"])


def test_index_build_and_search(tmp_path, trained_run, tuned):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES)))
    _ok(["index", "build", str(corpus), "-o", str(tmp_path / "idx"), "-m", str(trained_run)])
    result = _ok(["search", str(tmp_path / "idx"), "someone plays guitar", "-k", "2", "--json"])
    hits = json.loads(result.stdout.splitlines()[0])["hits"]
    scores = tuned.similarity(tuned.encode_queries(["someone plays guitar"]), tuned.encode_documents(SENTENCES))[0]
    assert [h["id"] for h in hits] == [f"d{i}" for i in np.argsort(-scores)[:2]]


def test_mine_negatives(tmp_path, trained_run):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"query": "a guitar player", "positive": SENTENCES[0]}) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "mined.jsonl"
    _ok(
        ["mine-negatives", str(data), str(out), "--corpus", str(corpus), "-m", str(trained_run), "--num-negatives", "2"]
    )
    assert len(json.loads(out.read_text().splitlines()[0])["negatives"]) == 2


def test_export_st(tmp_path, trained_run, tuned):
    from sentence_transformers import SentenceTransformer

    _ok(["export-st", str(tmp_path / "st"), "-m", str(trained_run)])
    theirs = SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(SENTENCES, prompt_name="document")
    assert np.abs(theirs - tuned.encode_documents(SENTENCES)).max() < 1e-4


def test_embed_corpus(tmp_path, trained_run, tuned):
    from llembed.corpus import read_vectors

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES)))
    _ok(["embed-corpus", str(corpus), str(tmp_path / "vectors"), "-m", str(trained_run), "--runner", "local"])
    vectors = read_vectors(tmp_path / "vectors").vectors
    assert np.allclose(vectors, tuned.encode_documents(SENTENCES), atol=1e-5)


def test_serve(trained_run, tuned):
    import httpx

    from llembed.serving.assembly import AppSpec, build_app

    from .serving.conftest import running

    app_ = build_app(AppSpec(model=str(trained_run)))
    assert list(app_.state.server.models) == [trained_run.name]  # the run's name, not its base model's
    with running(app_) as base:
        body = httpx.post(base + "/v1/embeddings", json={"input": SENTENCES[:2]}, timeout=60).json()
    vectors = np.array([row["embedding"] for row in body["data"]])
    assert np.allclose(vectors, tuned.encode(SENTENCES[:2]), atol=1e-5)
