"""STS: Spearman correlation of cosine similarity with gold scores (MTEB's main score for STS)."""

from __future__ import annotations

import numpy as np

from llembed.errors import InputError
from llembed.evaluation.metrics import sts_scores
from llembed.evaluation.tasks.base import SentencePairTask


class STSTask(SentencePairTask):
    type = "sts"
    main_metric = "cosine_spearman"
    metric_columns = ("cosine_spearman", "cosine_pearson")
    fields = ("sentence1", "sentence2", "score")

    @classmethod
    def check_row(cls, row: dict, where: str) -> None:
        try:
            row["score"] = float(row["score"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}: score {row['score']!r} is not a number") from exc

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_subsets(vectors, lambda a, b, rows: sts_scores(a, b, [r["score"] for r in rows]))
