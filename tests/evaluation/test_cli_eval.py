"""``llembed eval``: user data in the documented layouts, JSON output, aliases, and the suite's report."""

import json

import pytest
from typer.testing import CliRunner

from llembed import Embedder
from llembed.cli import app
from llembed.evaluation.datasets import load_dataset
from llembed.evaluation.evaluate import evaluate
from llembed.evaluation.tasks import make_task

runner = CliRunner()


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture(scope="module")
def model_dir(tiny_model_dirs):
    return str(tiny_model_dirs["qwen2"])


def test_eval_user_sts_file_as_json_equals_the_library(tmp_path, model_dir):
    rows = [
        ("A man plays a guitar.", "Someone plays guitar.", 4.5),
        ("A dog runs.", "Stocks fell.", 0.2),
        ("A cat sleeps.", "A kitten naps.", 4.0),
        ("Rain is falling.", "It is raining.", 4.8),
    ]
    data = tmp_path / "sts.tsv"
    data.write_text("sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows))
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            model_dir,
            "--data",
            str(data),
            "--type",
            "sts",
            "--format",
            "json",
            "--pooling",
            "mean",
            "--dtype",
            "float32",
        ],
    )
    payload = _json(result)
    expected = evaluate(
        Embedder.from_pretrained(model_dir, pooling="mean", dtype="float32"), make_task(load_dataset(data, type="sts"))
    )[0].scores
    assert payload["type"] == "sts" and payload["results"][0]["scores"] == pytest.approx(expected)


def test_eval_user_retrieval_with_sparse_and_classification(tmp_path, model_dir):
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    docs = {"d1": "Guitars have six strings.", "d2": "The stock market fell.", "d3": "Cats sleep a lot."}
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "how many strings on a guitar"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    payload = _json(runner.invoke(app, ["eval", "-m", model_dir, "--data", str(beir), "--sparse", "--format", "json"]))
    assert [r["variant"] for r in payload["results"]] == ["dense", "sparse", "hybrid"]
    args = ["eval", "-m", model_dir, "--data", str(beir), "--bm25", "--fusion", "rrf", "--format", "json"]
    payload = _json(runner.invoke(app, args))
    assert [r["variant"] for r in payload["results"]] == ["dense", "bm25", "dense+bm25"]
    assert payload["results"][1]["scores"]["ndcg_at_10"] == 100.0  # "guitar" and "strings" only in d1
    bad = runner.invoke(app, ["eval", "-m", model_dir, "--data", str(beir), "--bm25", "--fusion", "max"])
    assert bad.exit_code == 2 and "fusion must be one of rrf, weighted" in bad.output
    assert set(payload["results"][0]["scores"]) >= {"ndcg_at_10", "map_at_10", "mrr_at_10", "recall_at_100"}

    folder = tmp_path / "cls"
    folder.mkdir()
    train = [{"text": f"I love this {w}", "label": "pos"} for w in "abcdefgh"] + [
        {"text": f"I hate this {w}", "label": "neg"} for w in "abcdefgh"
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train[::3]))
    payload = _json(runner.invoke(app, ["eval", "-m", model_dir, "--data", str(folder), "--format", "json"]))
    assert payload["type"] == "classification" and 0 <= payload["results"][0]["scores"]["accuracy"] <= 100


def test_eval_reports_malformed_data_with_file_and_line(tmp_path, model_dir):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a"}\n')
    result = runner.invoke(app, ["eval", "-m", model_dir, "--data", str(data), "--type", "sts"])
    assert result.exit_code == 2 and "bad.jsonl:2" in result.output


def test_eval_alias_resolves_the_bundled_encoder(tmp_path):
    data = tmp_path / "sts.jsonl"
    rows = [
        ("A man plays a guitar.", "Someone plays guitar.", 4.5),
        ("A dog runs.", "Stocks fell.", 0.2),
        ("A cat sleeps.", "A kitten naps.", 4.0),
    ]
    data.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in rows))
    payload = _json(runner.invoke(app, ["eval", "-m", "all-minilm-l6-v2", "--data", str(data), "--format", "json"]))
    assert payload["model"] == "all-minilm-l6-v2" and payload["results"][0]["scores"]["main"] == pytest.approx(100.0)


def test_suite_with_a_custom_grid_writes_the_report(tmp_path, model_dir):
    out = tmp_path / "report"
    args = [
        "eval",
        "-m",
        model_dir,
        "-o",
        str(out),
        "--grid",
        "prompt=none,prompteol",
        "--grid",
        "pooling=mean,last",
        "--grid",
        "layer=-1",
        "--sts-pairs",
        "20",
        "--retrieval-queries",
        "4",
        "--retrieval-documents",
        "6",
        "--no-baselines",
        "--dtype",
        "float32",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("results.json", "results.md", "report.html", "best_stsbenchmark.yaml", "best_scifact.yaml"):
        assert (out / name).is_file(), name
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert len([c for c in cells if c["task"] == "STSBenchmark"]) == 4
    lexical = {"dense", "sparse", "bm25", "hybrid", "dense+bm25", "dense+sparse+bm25"}
    assert {c["variant"] for c in cells if c["task"] == "SciFact"} == lexical
    again = runner.invoke(app, args + ["--format", "json"])
    assert _json(again)["meta"]["computed"] == 0  # everything came from the cache


def test_eval_scores_a_corpus_with_empty_and_over_long_documents(tmp_path, model_dir):
    """Real BEIR corpora hold empty records and documents longer than the model: mteb keeps the first (embedded
    as an empty text) and cuts the second; so does ``llembed eval``, and it says how many there were."""
    import math

    import numpy as np

    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    long_text = "The committee reviewed the long report on river pollution. " * 120  # ~1,300 tokens > 512
    corpus = {"d1": "Guitars have six strings.", "d2": "", "d3": long_text, "d4": "Cats sleep most of the day."}
    queries = {"q1": "How many strings does a guitar have?", "q2": "river pollution report"}
    qrels = {"q1": "d1", "q2": "d3"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in corpus.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("".join(f"{q}\t{d}\t1\n" for q, d in qrels.items()))
    args = ["eval", "--model", model_dir, "--data", str(folder), "--format", "json", "--dtype", "float32"]
    result = _json(runner.invoke(app, args))["results"][0]
    assert (result["efficiency"]["empty"], result["efficiency"]["truncated"]) == (1, 1)

    # the same by hand: the empty text's vector is its prompt's, the long one is cut at max_length
    embedder = Embedder.from_pretrained(model_dir, dtype="float32", truncation=True)
    docs = np.concatenate(
        [
            embedder.encode_documents([corpus["d1"]]),
            embedder.format(embedder.pool([""], [embedder.spec], side="document", strict=False)[embedder.spec]),
            embedder.encode_documents([corpus["d3"], corpus["d4"]]),
        ]
    )
    scores = embedder.similarity(embedder.encode_queries(list(queries.values())), docs)
    ids = list(corpus)
    ndcg = []
    for row, query in enumerate(queries):
        ranking = [ids[i] for i in np.argsort(-scores[row], kind="stable")]
        ndcg.append(1 / math.log2(ranking.index(qrels[query]) + 2))
    assert result["scores"]["ndcg_at_10"] == pytest.approx(100 * sum(ndcg) / 2, abs=1e-4)

    import re

    table = runner.invoke(app, args[:-4] + ["--dtype", "float32"])  # the table: its last columns count them
    assert table.exit_code == 0
    assert re.search(r"dense .*│\s+1 │\s+1 │\s*$", table.stdout, re.MULTILINE), table.stdout
