"""Baselines on the same data: BM25 (:mod:`llembed.bm25`, the index's own channel) for retrieval and reranking."""

from __future__ import annotations

from llembed.bm25 import bm25_scores
from llembed.evaluation.evaluate import TaskResult
from llembed.evaluation.measure import measure
from llembed.evaluation.tasks import Task


def evaluate_bm25(task: Task) -> TaskResult:
    requests = task.requests()
    with measure() as cost:
        scores = bm25_scores(requests["query"], requests["document"])
    texts = len(requests["query"]) + len(requests["document"])
    efficiency = {
        "texts": texts,
        "seconds": cost.seconds,
        "ms_per_text": 1000 * cost.seconds / texts,
        "peak_rss_mb": cost.peak_rss_mb,
        "tokens": 0,
        "tokens_per_s": 0.0,
    }
    return TaskResult(
        task.name, task.type, task.score_similarity(scores), efficiency, "bm25", task.dataset.subsample_note
    )
