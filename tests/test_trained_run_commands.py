"""A `llembed train` run folder, and the tuned alias shipped with llembed (``smollm2-135m-tuned``: the same
layout inside the package), work as ``-m`` in every command, through the one resolver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed import Embedder
from llembed.cli import app

from .conftest import SENTENCES

runner = CliRunner()


@pytest.fixture(scope="module", params=["run folder", "tuned alias"])
def trained(request):
    """``-m`` as a user writes it: a tiny model's run folder, or the shipped alias of the real tuned model."""
    if request.param == "tuned alias":
        return "smollm2-135m-tuned"
    return str(request.getfixturevalue("trained_run"))


@pytest.fixture(scope="module")
def tuned(trained):
    return Embedder.from_pretrained(trained)


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_embed(tmp_path, trained, tuned):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    _ok(["embed", str(texts), "-o", str(tmp_path / "v.npy"), "-m", trained])
    assert np.allclose(np.load(tmp_path / "v.npy"), tuned.encode(SENTENCES), atol=1e-6)


def test_eval(tmp_path, trained, tuned):
    from llembed.evaluation.datasets import load_dataset
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.tasks import make_task

    data = tmp_path / "sts.jsonl"
    pairs = [(SENTENCES[0], SENTENCES[1], 4.5), (SENTENCES[0], SENTENCES[2], 0.5), (SENTENCES[3], SENTENCES[4], 1.0)]
    data.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in pairs))
    result = _ok(["eval", "--data", str(data), "-m", trained, "--format", "json"])
    scores = json.loads(result.stdout)["results"][0]["scores"]
    expected = evaluate(tuned, make_task(load_dataset(data)))[0].scores
    assert scores["main"] == pytest.approx(expected["main"])


def test_index_build_and_search(tmp_path, trained, tuned):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES)))
    _ok(["index", "build", str(corpus), "-o", str(tmp_path / "idx"), "-m", trained])
    result = _ok(["search", str(tmp_path / "idx"), "someone plays guitar", "-k", "2", "--json"])
    hits = json.loads(result.stdout.splitlines()[0])["hits"]
    scores = tuned.similarity(tuned.encode_queries(["someone plays guitar"]), tuned.encode_documents(SENTENCES))[0]
    assert [h["id"] for h in hits] == [f"d{i}" for i in np.argsort(-scores)[:2]]


def test_mine_negatives(tmp_path, trained):
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"query": "a guitar player", "positive": SENTENCES[0]}) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    out = tmp_path / "mined.jsonl"
    _ok(["mine-negatives", str(data), str(out), "--corpus", str(corpus), "-m", trained, "--num-negatives", "2"])
    assert len(json.loads(out.read_text().splitlines()[0])["negatives"]) == 2


def test_export_st(tmp_path, trained):
    from sentence_transformers import SentenceTransformer

    _ok(["export-st", str(tmp_path / "st"), "-m", trained])
    st = SentenceTransformer(str(tmp_path / "st"), device="cpu", trust_remote_code=True)  # PromptEOL: our module
    theirs = st.encode(SENTENCES, prompt_name="document")
    ours = Embedder.from_pretrained(trained, dtype="float32")  # the export is float32; auto may be bf16 here
    assert np.abs(theirs - ours.encode_documents(SENTENCES)).max() < 1e-4


def test_embed_corpus(tmp_path, trained, tuned):
    from llembed.corpus import read_vectors

    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES)))
    _ok(["embed-corpus", str(corpus), str(tmp_path / "vectors"), "-m", trained, "--runner", "local"])
    vectors = read_vectors(tmp_path / "vectors").vectors
    assert np.allclose(vectors, tuned.encode_documents(SENTENCES), atol=1e-5)


def test_serve(trained, tuned):
    import httpx

    from llembed.serving.assembly import AppSpec, build_app

    from .serving.conftest import running

    app_ = build_app(AppSpec(model=trained))
    assert list(app_.state.server.models) == [Path(trained).name]  # the run's or alias's, not its base model's
    with running(app_) as base:
        body = httpx.post(base + "/v1/embeddings", json={"input": SENTENCES[:2]}, timeout=60).json()
    vectors = np.array([row["embedding"] for row in body["data"]])
    assert np.allclose(vectors, tuned.encode(SENTENCES[:2]), atol=1e-5)
