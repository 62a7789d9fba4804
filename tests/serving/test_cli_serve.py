"""``llembed index build`` and ``llembed search`` from the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed.cli import app
from llembed.index import VectorIndex


def test_index_build_then_search(tmp_path, tiny_model_dirs, corpus_file, tiny_embedder):
    runner = CliRunner()
    out = tmp_path / "idx"
    model = str(tiny_model_dirs["llama"])
    built = runner.invoke(
        app,
        ["index", "build", str(corpus_file), "-o", str(out), "-m", model, "--sparse"],
    )
    assert built.exit_code == 0, built.output
    assert "flat index of 60" in built.output
    found = runner.invoke(app, ["search", str(out), "newborn white matter", "-k", "3", "--json", "--mode", "hybrid"])
    assert found.exit_code == 0, found.output
    line = json.loads(found.stdout.strip().splitlines()[-1])
    expected = VectorIndex.load(out).search("newborn white matter", k=3, mode="hybrid")[0]
    assert [h["id"] for h in line["hits"]] == [h.id for h in expected]

    missing = runner.invoke(
        app, ["index", "build", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "x"), "-m", model]
    )
    assert missing.exit_code == 2
    assert "corpus not found" in missing.output
    bad_mode = runner.invoke(app, ["search", str(out), "q", "--mode", "fuzzy"])
    assert bad_mode.exit_code == 2
    assert "mode must be one of" in bad_mode.output

    weighted = ["--mode", "dense+bm25", "--fusion", "weighted", "--weight", "bm25=3", "--weight", "dense=1"]
    found = runner.invoke(app, ["search", str(out), "newborn white matter", "-k", "3", "--json", *weighted])
    assert found.exit_code == 0, found.output
    expected = VectorIndex.load(out).search(
        "newborn white matter", 3, "dense+bm25", "weighted", {"bm25": 3, "dense": 1}
    )
    assert [h["id"] for h in json.loads(found.stdout.strip().splitlines()[-1])["hits"]] == [h.id for h in expected[0]]
    for flags, message in (
        (["--weight", "bm25"], "--weight takes CHANNEL=NUMBER"),
        (["--mode", "dense+bm25", "--weight", "sparse=1"], "weights name 'sparse'"),
        (["--mode", "dense+bm25", "--fusion", "max"], "fusion must be one of rrf, weighted"),
    ):
        bad = runner.invoke(app, ["search", str(out), "q", *flags])
        assert bad.exit_code == 2 and message in bad.output, flags

    plain = tmp_path / "plain"
    assert (
        runner.invoke(app, ["index", "build", str(corpus_file), "-o", str(plain), "-m", model, "--no-bm25"]).exit_code
        == 0
    )
    no_bm25 = runner.invoke(app, ["search", str(plain), "q", "--mode", "bm25"])
    assert no_bm25.exit_code == 2
    assert "plain has no bm25 part for mode 'bm25' (build it without --no-bm25)" in no_bm25.output
    assert len(no_bm25.output.strip().splitlines()) == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    refused = runner.invoke(app, ["index", "build", str(empty), "-o", str(tmp_path / "e"), "-m", model])
    assert refused.exit_code == 2 and "empty" in refused.output and not (tmp_path / "e").exists()


def test_search_then_rerank_and_the_rerank_command(tmp_path, tiny_model_dirs, corpus_file):
    from llembed import Reranker
    from llembed.index import rerank_hits

    runner = CliRunner()
    out = tmp_path / "idx"
    model = str(tiny_model_dirs["llama"])
    assert runner.invoke(app, ["index", "build", str(corpus_file), "-o", str(out), "-m", model]).exit_code == 0
    query = "newborn white matter"
    found = runner.invoke(app, ["search", str(out), query, "-k", "3", "--json", "--rerank", model, "--rerank-top", "8"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout.strip().splitlines()[-1])["hits"]
    reranker = Reranker.from_pretrained(model, truncation=True)
    searched = VectorIndex.load(out).search(query, k=8)[0]
    expected = rerank_hits(reranker, query, searched, 3)
    assert [(h["id"], h["retrieval_rank"]) for h in hits] == [(h.id, h.retrieval_rank) for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert searched[expected[0].retrieval_rank - 1].id == expected[0].id
    blended = runner.invoke(app, ["search", str(out), query, "-k", "3", "--json", "--rerank", model,
                                  "--rerank-top", "8", "--rerank-weight", "0.3"])  # fmt: skip
    assert blended.exit_code == 0, blended.output
    hits = json.loads(blended.stdout.strip().splitlines()[-1])["hits"]
    judged = np.array(reranker.score(query, [h.text for h in searched]))
    stage = np.array([h.score for h in searched])
    by_hand = 0.7 * (stage - stage.min()) / np.ptp(stage) + 0.3 * (judged - judged.min()) / np.ptp(judged)
    assert [h["id"] for h in hits] == [searched[i].id for i in np.argsort(-by_hand, kind="stable")[:3]]
    assert [h["score"] for h in hits] == pytest.approx(sorted(by_hand, reverse=True)[:3], abs=1e-5)
    refused = runner.invoke(app, ["search", str(out), query, "--rerank", model, "--rerank-weight", "2"])
    assert refused.exit_code == 2 and "rerank weight must be a number from 0 to 1" in refused.output

    documents = ["Cats sleep all day.", "White matter of the newborn brain.", "Stock prices fell."]
    ranked = runner.invoke(app, ["rerank", query, *documents, "-m", model, "--json", "--top-n", "2"])
    assert ranked.exit_code == 0, ranked.output
    results = json.loads(ranked.stdout.strip().splitlines()[-1])["results"]
    assert [r["index"] for r in results] == [r["index"] for r in reranker.rank(query, documents, top_n=2)]
    neither = runner.invoke(app, ["rerank", query, "-m", model])
    assert neither.exit_code == 2 and "--input FILE" in neither.output


def test_rerank_without_a_model_asks_the_shipped_trained_reranker():
    from llembed.model_sources import default_reranker

    documents = ["The stock market fell sharply on Monday.", "Paris is the capital and largest city of France."]
    shown = CliRunner().invoke(app, ["rerank", "What is the capital of France?", *documents])
    assert shown.exit_code == 0, shown.output
    assert default_reranker() in shown.output and "p(relevant)" in shown.output  # calibrated, not the raw p(yes)
    first_row = next(line for line in shown.output.splitlines() if line.strip("│┃| ").startswith("1 "))
    assert "Paris" in first_row


def test_index_build_settles_auto_chunking_on_a_labelled_sample(tmp_path, tiny_model_dirs, corpus_file):
    sample = tmp_path / "sample"
    (sample / "qrels").mkdir(parents=True)
    docs = [json.loads(line) for line in corpus_file.read_text(encoding="utf-8").splitlines()[:6]]
    (sample / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": d["text"]}) + "\n" for i, d in enumerate(docs)), encoding="utf-8"
    )
    (sample / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": d["text"][:40]}) + "\n" for i, d in enumerate(docs[:3])),
        encoding="utf-8",
    )
    (sample / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3)), encoding="utf-8"
    )
    runner = CliRunner()
    model = str(tiny_model_dirs["llama"])
    base = ["index", "build", str(corpus_file), "-m", model, "--no-bm25", "--auto-sample", str(sample)]
    refused = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert refused.exit_code != 0 and "pass --chunking auto" in refused.output
    built = runner.invoke(app, [*base, "-o", str(tmp_path / "b"), "--chunking", "auto", "--chunk-tokens", "8"])
    assert built.exit_code == 0, built.output
    assert "nDCG@10 on" in built.output and "first" in built.output and "mean" in built.output
    chosen = built.output.split("chunking ", 1)[1].split()[0]
    assert VectorIndex.load(tmp_path / "b").recipe.chunking == chosen  # the index records the sample's choice
