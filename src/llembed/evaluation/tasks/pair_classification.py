"""Pair classification: average precision of pair similarity for the binary label; main = best of
cosine / dot / euclidean / manhattan (MTEB ≥ 1.12's ``max_ap``)."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import pair_classification_scores
from llembed.evaluation.tasks.base import Task, lookup, unique


class PairClassificationTask(Task):
    type = "pair"
    main_metric = "max_ap"

    def requests(self) -> dict[str, list[str]]:
        rows = self.dataset.rows
        return {"text": unique([r["sentence1"] for r in rows] + [r["sentence2"] for r in rows])}

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        rows = self.dataset.rows
        get = lookup(self.requests()["text"], vectors["text"])
        scores = pair_classification_scores(
            get([r["sentence1"] for r in rows]), get([r["sentence2"] for r in rows]), [r["label"] for r in rows]
        )
        return {"main": scores[self.main_metric], **scores}
