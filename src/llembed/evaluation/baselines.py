"""Baselines on the same data: BM25 (the maintained ``bm25s`` library) for retrieval and reranking."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.evaluate import TaskResult
from llembed.evaluation.measure import measure
from llembed.evaluation.tasks import Task


def bm25_scores(queries: list[str], documents: list[str]) -> np.ndarray:
    """(queries × documents) BM25 scores (Lucene variant, k1=1.5, b=0.75, English stop words)."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(documents, stopwords="en", show_progress=False), show_progress=False)
    tokenized = bm25s.tokenize(queries, stopwords="en", show_progress=False, return_ids=False)
    return np.stack([retriever.get_scores(tokens) for tokens in tokenized]).astype(np.float32)


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
