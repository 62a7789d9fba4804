"""Evaluating a reranker: a reranking set's candidates and retrieve-then-rerank, against hand computations from
``Reranker.score``; the ``llembed eval --rerank`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed import Embedder, Recipe, Reranker
from llembed.cli import app
from llembed.evaluation.datasets import Dataset
from llembed.evaluation.metrics import reranking_map
from llembed.evaluation.rerank_eval import evaluate_reranker, evaluate_with_reranker
from llembed.evaluation.tasks import make_task

CORPUS = {
    "d1": "Guitars usually have six strings.",
    "d2": "The violin has four strings and is played with a bow.",
    "d3": "Cats sleep for most of the day.",
    "d4": "Stock markets fell sharply after the announcement.",
    "d5": "A lion is a large cat that lives in Africa.",
}
QUERIES = {"q1": "How many strings does a guitar have?", "q2": "Which cats are big?"}


@pytest.fixture(scope="module")
def reranker(tiny_backbones):
    return Reranker(tiny_backbones["llama"], Recipe(truncation=True))


def test_a_reranking_sets_candidates_are_ordered_by_the_reranker(reranker):
    qrels = {"q1": {"d1": 1, "d2": 0, "d4": 0}, "q2": {"d3": 0, "d5": 1, "d2": 0, "d4": 0}}
    dataset = Dataset("reranking", "tiny-rerank", Path("."), {"instruction": "Find the answer"}, corpus=CORPUS,
                      queries=QUERIES, qrels=qrels)  # fmt: skip
    (result,) = evaluate_reranker(reranker, make_task(dataset), show_progress_bar=False)
    scores = [
        np.array(reranker.score(QUERIES[q], [CORPUS[d] for d in qrels[q]], task="Find the answer")) for q in qrels
    ]
    labels = [list(qrels[q].values()) for q in qrels]
    assert result.scores["map"] == pytest.approx(reranking_map(scores, labels)["map"], abs=1e-6)
    assert result.variant == "rerank" and result.efficiency["texts"] == 7
    assert result.efficiency["ms_per_query"] > 0 and 0 < result.efficiency["computed_share"] < 1


def test_a_first_stages_top_candidates_are_reranked_above_the_rest(reranker):
    qrels = {"q1": {"d1": 0, "d2": 1, "d4": 0}, "q2": {"d3": 0, "d5": 1, "d2": 0, "d4": 0}}
    dataset = Dataset("reranking", "tiny-rerank", Path("."), {"instruction": "Find the answer"}, corpus=CORPUS,
                      queries=QUERIES, qrels=qrels)  # fmt: skip
    # columns: the candidates in corpus order (d1, d2, d3, d4, d5); q1's relevant d2 is last in the first stage
    first = np.array([[0.9, 0.1, 0.0, 0.5, 0.0], [0.0, 0.6, 0.2, 0.9, 0.4]], dtype=np.float32)
    (result,) = evaluate_reranker(reranker, make_task(dataset), {"dense": first}, top=2, show_progress_bar=False)
    ids = list(CORPUS)
    scores, labels = [], []
    for row, query in enumerate(qrels):
        order = sorted(qrels[query], key=lambda d: -first[row, ids.index(d)])
        head = order[:2]
        judged = reranker.score(QUERIES[query], [CORPUS[d] for d in head], task="Find the answer")
        ranking = [head[i] for i in np.argsort(-np.array(judged), kind="stable")] + order[2:]
        scores.append(np.array([len(ranking) - ranking.index(d) for d in qrels[query]], dtype=float))
        labels.append(list(qrels[query].values()))
        if query == "q1":  # its relevant d2 was outside the first stage's top 2, so it stays last
            assert ranking[-1] == "d2"
    assert result.variant == "dense → rerank top 2" and result.efficiency["texts"] == 4
    assert result.scores["map"] == pytest.approx(reranking_map(scores, labels)["map"], abs=1e-6)
    (everything,) = evaluate_reranker(reranker, make_task(dataset), {"dense": first}, top=4, show_progress_bar=False)
    (alone,) = evaluate_reranker(reranker, make_task(dataset), show_progress_bar=False)
    assert everything.scores["map"] == pytest.approx(alone.scores["map"], abs=1e-6)  # a top this big reranks all


def test_retrieve_then_rerank_reorders_the_top_and_keeps_the_rest(reranker):
    qrels = {"q1": {"d2": 1}, "q2": {"d5": 1}}
    dataset = Dataset("retrieval", "tiny-retrieval", Path("."), corpus=CORPUS, queries=QUERIES, qrels=qrels)
    first = np.array([[0.9, 0.1, 0.5, 0.8, 0.7], [0.2, 0.9, 0.8, 0.1, 0.3]])  # the relevant ones ranked low
    (result,) = evaluate_reranker(reranker, make_task(dataset), {"dense": first}, top=3, show_progress_bar=False)
    ids = list(CORPUS)
    ndcg = []
    for row, query in enumerate(QUERIES):
        order = [ids[i] for i in np.argsort(-first[row])]
        head = order[:3]
        scores = reranker.score(QUERIES[query], [CORPUS[d] for d in head])
        ranking = [head[i] for i in np.argsort(-np.array(scores), kind="stable")] + order[3:]
        relevant = next(iter(qrels[query]))
        ndcg.append(1 / math.log2(ranking.index(relevant) + 2) if relevant in ranking[:10] else 0.0)
    assert result.variant == "dense → rerank top 3"
    assert result.scores["ndcg_at_10"] == pytest.approx(100 * np.mean(ndcg), abs=1e-4)
    assert result.scores["recall_at_100"] == 100.0  # the rest kept its place: every document is still ranked


def test_retrieve_then_rerank_blended_with_the_first_stage(reranker):
    qrels = {"q1": {"d2": 1}, "q2": {"d5": 1}}
    dataset = Dataset("retrieval", "tiny-retrieval", Path("."), corpus=CORPUS, queries=QUERIES, qrels=qrels)
    first = np.array([[0.9, 0.1, 0.5, 0.8, 0.7], [0.2, 0.9, 0.8, 0.1, 0.3]])
    task = make_task(dataset)
    (blended,) = evaluate_reranker(reranker, task, {"dense": first}, top=3, show_progress_bar=False, weight=0.4)
    ids = list(CORPUS)
    ndcg = []
    for row, query in enumerate(QUERIES):
        order = [ids[i] for i in np.argsort(-first[row])]
        head = order[:3]
        judged = np.array(reranker.score(QUERIES[query], [CORPUS[d] for d in head]))
        stage = np.array([first[row, ids.index(d)] for d in head])
        by_hand = 0.6 * (stage - stage.min()) / np.ptp(stage) + 0.4 * (judged - judged.min()) / np.ptp(judged)
        ranking = [head[i] for i in np.argsort(-by_hand, kind="stable")] + order[3:]
        relevant = next(iter(qrels[query]))
        ndcg.append(1 / math.log2(ranking.index(relevant) + 2) if relevant in ranking[:10] else 0.0)
    assert blended.variant == "dense → rerank top 3, blended 0.4"
    assert blended.scores["ndcg_at_10"] == pytest.approx(100 * np.mean(ndcg), abs=1e-4)
    (kept,) = evaluate_reranker(reranker, task, {"dense": first}, top=3, show_progress_bar=False, weight=0.0)
    (plain,) = evaluate_reranker(reranker, task, {"dense": first}, top=3, show_progress_bar=False, weight=1.0)
    assert kept.scores["ndcg_at_10"] == pytest.approx(task.score_similarity(first)["ndcg_at_10"], abs=1e-4)
    assert plain.variant == "dense → rerank top 3"


def test_evaluate_with_reranker_gives_before_and_after(tiny_backbones, reranker):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32"))
    qrels = {"q1": {"d1": 1}, "q2": {"d5": 1}}
    dataset = Dataset("retrieval", "tiny-retrieval", Path("."), corpus=CORPUS, queries=QUERIES, qrels=qrels)
    results = evaluate_with_reranker(embedder, reranker, make_task(dataset), sparse=True, top=2)
    assert [r.variant for r in results] == [
        "dense",
        "sparse",
        "hybrid",
        "dense → rerank top 2",
        "hybrid → rerank top 2",
    ]


def test_the_eval_command_reranks(tmp_path, tiny_model_dirs):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in CORPUS.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2\td5\t1\n")
    model = str(tiny_model_dirs["llama"])
    runner = CliRunner()
    args = ["eval", "-m", model, "--data", str(folder), "--dtype", "float32", "--rerank", model, "--rerank-top", "3"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    assert [r["variant"] for r in payload["results"]] == ["dense", "dense → rerank top 3"]
    table = runner.invoke(app, args)
    assert table.exit_code == 0 and "rerank top 3" in table.stdout
    no_data = runner.invoke(app, ["eval", "-m", model, "--rerank", model])
    assert no_data.exit_code == 2 and "add --data" in no_data.output
    sts = runner.invoke(app, ["eval", "-m", model, "--data", "stsbenchmark", "--rerank", model])
    assert sts.exit_code == 2 and "scores reranking and retrieval sets" in sts.output
