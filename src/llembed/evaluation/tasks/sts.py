"""STS: Spearman correlation of cosine similarity with gold scores (MTEB's main score for STS)."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import sts_scores
from llembed.evaluation.tasks.base import Task, lookup, unique


class STSTask(Task):
    type = "sts"
    main_metric = "cosine_spearman"

    def requests(self) -> dict[str, list[str]]:
        rows = self.dataset.rows
        return {"text": unique([r["sentence1"] for r in rows] + [r["sentence2"] for r in rows])}

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        rows = self.dataset.rows
        get = lookup(self.requests()["text"], vectors["text"])
        scores = sts_scores(
            get([r["sentence1"] for r in rows]), get([r["sentence2"] for r in rows]), [r["score"] for r in rows]
        )
        return {"main": scores[self.main_metric], **scores}
