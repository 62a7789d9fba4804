"""Pair classification: average precision of pair similarity for the binary label; main = best of
cosine / dot / euclidean / manhattan (MTEB ≥ 1.12's ``max_ap``)."""

from __future__ import annotations

import numpy as np

from llembed.errors import InputError
from llembed.evaluation.metrics import pair_classification_scores
from llembed.evaluation.tasks.base import SentencePairTask


class PairClassificationTask(SentencePairTask):
    type = "pair"
    main_metric = "max_ap"
    metric_columns = ("max_ap", "cosine_ap")
    fields = ("sentence1", "sentence2", "label")

    @classmethod
    def check_row(cls, row: dict, where: str) -> None:
        if str(row["label"]) not in ("0", "1"):
            raise InputError(f"{where}: label {row['label']!r} is not 0 or 1")
        row["label"] = int(row["label"])

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_subsets(
            vectors, lambda a, b, rows: pair_classification_scores(a, b, [r["label"] for r in rows])
        )
