"""Reranking: order each query's own candidates (its qrels rows; score 0 = negative); MAP is the main score."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import reranking_map
from llembed.evaluation.tasks.base import BeirTask
from llembed.output import cosine_matrix


class RerankingTask(BeirTask):
    """The BEIR layout; each query's candidates are its qrels rows (score 0 = a judged negative)."""

    type = "reranking"
    main_metric = "map"
    metric_columns = ("map", "mrr_at_10")
    infer = False  # its folder looks like retrieval's: a reranking set says its type

    def requests(self) -> dict[str, list[str]]:
        wanted = {doc for candidates in self.dataset.qrels.values() for doc in candidates}
        return {
            "query": list(self.dataset.queries.values()),
            "document": [text for doc, text in self.dataset.corpus.items() if doc in wanted],
        }

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_similarity(cosine_matrix(vectors["query"], vectors["document"]))

    def score_similarity(self, similarity: np.ndarray) -> dict[str, float]:
        wanted = {doc for candidates in self.dataset.qrels.values() for doc in candidates}
        column = {doc: i for i, doc in enumerate(d for d in self.dataset.corpus if d in wanted)}
        scores, labels = [], []
        for row, query in enumerate(self.dataset.queries):
            candidates = self.dataset.qrels[query]
            scores.append(similarity[row, [column[doc] for doc in candidates]])
            labels.append([int(rel > 0) for rel in candidates.values()])
        result = reranking_map(scores, labels)
        return {"main": result[self.main_metric], **result}
