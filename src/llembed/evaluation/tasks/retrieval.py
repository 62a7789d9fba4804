"""Retrieval: rank the whole corpus for each query; nDCG@10 main, MAP@10, MRR@10, Recall@100 as MTEB reports."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import rank_documents, retrieval_scores
from llembed.evaluation.tasks.base import BeirTask
from llembed.output import cosine_matrix

TOP_K = 1000  # MTEB keeps the top 1000 per query


class RetrievalTask(BeirTask):
    type = "retrieval"
    main_metric = "ndcg_at_10"
    metric_columns = ("ndcg_at_10", "map_at_10", "mrr_at_10", "recall_at_100")
    marker_file = "corpus.jsonl"

    def requests(self) -> dict[str, list[str]]:
        return {"query": list(self.dataset.queries.values()), "document": list(self.dataset.corpus.values())}

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_similarity(cosine_matrix(vectors["query"], vectors["document"]))

    def score_similarity(self, similarity: np.ndarray) -> dict[str, float]:
        """Metrics from a (queries × documents) score matrix, e.g. sparse or hybrid scores."""
        query_ids = list(self.dataset.queries)
        ranked = rank_documents(similarity, list(self.dataset.corpus), TOP_K)
        scores = retrieval_scores(dict(zip(query_ids, ranked, strict=True)), self.dataset.qrels, (10, 100))
        keep = {name: scores[name] for name in ("ndcg_at_10", "map_at_10", "mrr_at_10", "recall_at_100")}
        return {"main": keep[self.main_metric], **keep}
