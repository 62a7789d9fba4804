"""The ablation runner on a tiny model: every cell scored, cached per cell, resumable, reported."""

import json

import numpy as np
import pytest

from llembed import Embedder, Recipe
from llembed.bm25 import bm25_scores
from llembed.evaluation.ablation import AblationRunner, parse_grid
from llembed.evaluation.bundled import load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.evaluate import evaluate
from llembed.evaluation.report import write_report
from llembed.evaluation.tasks import make_task
from llembed.output import cosine_matrix


@pytest.fixture(scope="module")
def tiny(tiny_backbones):
    return Embedder(tiny_backbones["llama"], Recipe(model="tiny-llama", dtype="float32"))


@pytest.fixture(scope="module")
def sts():
    return subsample_pairs(load_bundled("stsbenchmark"), 40)


def test_parse_grid(tmp_path):
    assert parse_grid(["prompt=none,prompteol", "layer=-1,2", "exclude_prompt=true"]) == {
        "prompt": ["none", "prompteol"],
        "layer": [-1, 2],
        "exclude_prompt": [True],
    }
    file = tmp_path / "grid.yaml"
    file.write_text("pooling: [mean, last]\nlayer: -1\n")
    assert parse_grid([str(file)]) == {"pooling": ["mean", "last"], "layer": [-1]}


def test_grid_cells_equal_separate_evaluations_and_share_forward_passes(tiny, sts, tmp_path):
    runner = AblationRunner(tiny, tmp_path)
    cells = runner.run_grid({"prompt": ["none", "prompteol"], "pooling": ["mean", "last"], "layer": [-1, 2]}, sts)
    assert len(cells) == 8 and runner.computed == 8
    for cell in cells:
        alone = Embedder(tiny.backbone, Recipe(**{k: v for k, v in cell.recipe.items()}))
        expected = evaluate(alone, make_task(sts))[0].main
        assert cell.main == pytest.approx(expected, abs=1e-6), cell.label
        assert cell.efficiency["tokens_per_s"] > 0 and cell.efficiency["peak_rss_mb"] > 0


def test_cells_are_cached_and_runs_resume(tiny, sts, tmp_path):
    grid = {"prompt": ["none", "ke"], "pooling": ["mean", "weighted_mean"]}
    first = AblationRunner(tiny, tmp_path)
    first.run_grid(grid, sts)
    assert first.computed == 4
    again = AblationRunner(tiny, tmp_path)
    again.run_grid(grid, sts)
    assert (again.computed, again.reused) == (0, 4)
    # an interrupted run lost one cell: only that one is computed
    victim = sorted((tmp_path / "cache").glob("*.json"))[0]
    victim.unlink()
    resumed = AblationRunner(tiny, tmp_path)
    resumed.run_grid(grid, sts)
    assert (resumed.computed, resumed.reused) == (1, 3)
    # adding a cell computes only that cell
    grown = AblationRunner(tiny, tmp_path)
    grown.run_grid({**grid, "pooling": ["mean", "weighted_mean", "max"]}, sts)
    assert (grown.computed, grown.reused) == (2, 4)


def test_lexical_variants_and_report(tiny, sts, tmp_path):
    runner = AblationRunner(tiny, tmp_path)
    runner.run_grid({"prompt": ["none", "prompteol"], "pooling": ["mean", "last"]}, sts)
    retrieval = subsample_retrieval(load_bundled("scifact"), 5, 10)
    recipe = tiny.recipe.replace(prompt="prompteol", pooling="last", max_length=128, truncation=True)
    cells = runner.run_lexical(retrieval, recipe)
    assert [c.variant for c in cells] == ["dense", "sparse", "bm25", "hybrid", "dense+bm25", "dense+sparse+bm25"]
    bm25 = runner.run_baseline(retrieval, "bm25", "BM25 (bm25s)")
    assert 0 <= bm25.main <= 100 and bm25.variant == "baseline"
    assert bm25.scores == cells[2].scores  # the recipe's BM25 channel is the baseline, tokenized alike
    paths = write_report(runner.cells, tmp_path, {"model": "tiny", "suite": "test", "seconds": 1.0})
    data = json.loads(paths["json"].read_text())
    assert len(data["cells"]) == len(runner.cells)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") >= 4 and "Best recipe" in html
    assert "prompt × pooling @ layer" in paths["md"].read_text()
    best_file = paths[f"best:{sts.name}"]
    best = Recipe.load(best_file)
    top = max((c for c in runner.cells if c.task == sts.name), key=lambda c: c.main)
    assert best.prompt == top.recipe["prompt"] and best.pooling == top.recipe["pooling"]


def test_sparse_scores_come_from_the_same_pass_as_dense(tiny):
    retrieval = subsample_retrieval(load_bundled("scifact"), 4, 6)
    embedder = Embedder(
        tiny.backbone, tiny.recipe.replace(prompt="prompteol", pooling="last", max_length=128, truncation=True)
    )
    results = evaluate(embedder, make_task(retrieval), sparse=True)
    assert [r.variant for r in results] == ["dense", "sparse", "hybrid"]
    queries = list(retrieval.queries.values())
    matrix = embedder.encode_sparse(queries, side="query")
    assert np.isfinite(matrix.data).all() and matrix.shape[0] == len(queries)


def test_bm25_modes_are_the_fusion_of_the_channels_by_hand(tiny):
    retrieval = subsample_retrieval(load_bundled("scifact"), 6, 20)
    task = make_task(retrieval)
    embedder = Embedder(tiny.backbone, tiny.recipe.replace(prompt="prompteol", max_length=64, truncation=True))
    results = {r.variant: r for r in evaluate(embedder, task, bm25=True, fusions=("rrf", "weighted"))}
    assert list(results) == ["dense", "bm25", "dense+bm25", "dense+bm25 (weighted)"]  # the first fusion unnamed
    requests = task.requests()
    dense = cosine_matrix(embedder.encode_queries(requests["query"], task=retrieval.meta.get("instruction")),
                          embedder.encode_documents(requests["document"]))  # fmt: skip
    lexical = bm25_scores(requests["query"], requests["document"])
    assert results["dense"].scores == pytest.approx(task.score_similarity(dense), abs=1e-6)
    assert results["bm25"].scores == pytest.approx(task.score_similarity(lexical))
    # RRF by hand: each channel's rank over all documents (ties by document order), 1 / (60 + rank)
    by_hand = np.zeros_like(dense, dtype=np.float64)
    for scores in (dense, lexical):
        for row, values in enumerate(scores):
            order = sorted(range(len(values)), key=lambda i: (-values[i], i))
            for rank, column in enumerate(order, start=1):
                by_hand[row, column] += 1 / (60 + rank)
    assert results["dense+bm25"].scores == pytest.approx(task.score_similarity(by_hand), abs=1e-6)
    low, high = lexical.min(1, keepdims=True), lexical.max(1, keepdims=True)
    d_low, d_high = dense.min(1, keepdims=True), dense.max(1, keepdims=True)
    mixed = 0.5 * (dense - d_low) / (d_high - d_low) + 0.5 * (lexical - low) / np.where(high > low, high - low, 1)
    mixed += 0.5 * (high == low)  # a query matching no word: every document ties at BM25's full share
    assert results["dense+bm25 (weighted)"].scores == pytest.approx(task.score_similarity(mixed), abs=1e-6)
