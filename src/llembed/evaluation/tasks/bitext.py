"""Bitext mining (MTEB's BitextMining): find each sentence's translation among all of the other language's
sentences by cosine; F1 of the matches.

MTEB matches ``sentence1`` (e.g. German) to ``sentence2`` (English) and publishes that direction; llembed
reports it as ``f1`` (the main score) and the reverse direction (English to the language) as ``f1_reverse``.
Per-language scores are kept under each subset's name; the main score is their mean.
"""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import bitext_scores
from llembed.evaluation.tasks.base import SentencePairTask


class BitextMiningTask(SentencePairTask):
    type = "bitext"
    main_metric = "f1"
    metric_columns = ("f1", "f1_reverse", "accuracy")
    infer = False  # any pair file has these fields: a bitext set says its type

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return self.score_subsets(vectors, _both_directions)


def _both_directions(source: np.ndarray, target: np.ndarray, rows: list[dict]) -> dict[str, float]:
    forward = bitext_scores(source, target)
    reverse = bitext_scores(target, source)
    return forward | {"f1_reverse": reverse["f1"], "accuracy_reverse": reverse["accuracy"]}
