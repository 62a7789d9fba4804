"""Pair classification: average precision of pair similarity for the binary label; main = best of
cosine / dot / euclidean / manhattan (MTEB ≥ 1.12's ``max_ap``)."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import pair_classification_scores
from llembed.evaluation.tasks.base import SentencePairTask


class PairClassificationTask(SentencePairTask):
    type = "pair"
    main_metric = "max_ap"

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_subsets(
            vectors, lambda a, b, rows: pair_classification_scores(a, b, [r["label"] for r in rows])
        )
