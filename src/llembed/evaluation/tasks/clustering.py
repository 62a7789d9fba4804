"""Clustering: V-measure of mini-batch k-means (k = number of labels) on the embeddings."""

from __future__ import annotations

import numpy as np

from llembed.evaluation.metrics import clustering_v_measure
from llembed.evaluation.tasks.base import LabelledTextTask, lookup, unique


class ClusteringTask(LabelledTextTask):
    type = "clustering"
    main_metric = "v_measure"
    metric_columns = ("v_measure",)

    def requests(self) -> dict[str, list[str]]:
        return {"text": unique(r["text"] for r in self.dataset.rows)}

    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        get = lookup(self.requests()["text"], vectors["text"])
        rows = self.dataset.rows
        scores = clustering_v_measure(get([r["text"] for r in rows]), [r["label"] for r in rows])
        return {"main": scores[self.main_metric], **scores}
