"""STS: Spearman correlation of cosine similarity with gold scores (MTEB's main score for STS)."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import sts_scores
from llembed.evaluation.tasks.base import SentencePairTask


class STSTask(SentencePairTask):
    type = "sts"
    main_metric = "cosine_spearman"

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        first, second = self.pair_vectors(vectors)
        scores = sts_scores(first, second, [r["score"] for r in self.dataset.rows])
        return {"main": scores[self.main_metric], **scores}
