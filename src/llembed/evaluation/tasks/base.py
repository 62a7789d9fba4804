"""A task turns a dataset into the texts to embed (per side) and scores the vectors it gets back."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from llembed.evaluation.datasets import Dataset


class Task(ABC):
    type: str = ""
    main_metric: str = ""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    @property
    def name(self) -> str:
        return self.dataset.name

    @abstractmethod
    def requests(self) -> dict[str, list[str]]:
        """Unique texts to embed, by side (``text``, ``query`` or ``document``)."""

    @abstractmethod
    def score(self, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        """Metrics (×100) from vectors aligned with :meth:`requests`; ``main`` holds the main score."""


def unique(texts) -> list[str]:
    return list(dict.fromkeys(texts))


def lookup(texts: list[str], vectors: np.ndarray):
    index = {text: i for i, text in enumerate(texts)}
    return lambda wanted: vectors[[index[t] for t in wanted]]


class SentencePairTask(Task):
    """Tasks over ``sentence1, sentence2`` rows (STS, pair classification, bitext): both sides are plain texts.

    Rows may carry a ``subset`` (a language or language pair): then each subset is scored on its own and the
    main score is their mean, as MTEB averages a multilingual task's subsets."""

    def requests(self) -> dict[str, list[str]]:
        rows = self.dataset.rows
        return {"text": unique([r["sentence1"] for r in rows] + [r["sentence2"] for r in rows])}

    def pair_vectors(self, vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        get = lookup(self.requests()["text"], vectors["text"])
        rows = self.dataset.rows
        return get([r["sentence1"] for r in rows]), get([r["sentence2"] for r in rows])

    def subsets(self) -> dict[str, list[int]]:
        """Row indices per ``subset`` (one unnamed subset when the rows have none)."""
        groups: dict[str, list[int]] = {}
        for index, row in enumerate(self.dataset.rows):
            groups.setdefault(row.get("subset", ""), []).append(index)
        return groups

    def score_subsets(self, vectors: dict[str, np.ndarray], score_rows) -> dict[str, float]:
        """``score_rows(first, second, rows)`` per subset; with several, every metric is the subsets' mean and
        ``<subset>`` holds each subset's main score."""
        first, second = self.pair_vectors(vectors)
        rows = self.dataset.rows
        results = {}
        for subset, indices in self.subsets().items():
            results[subset] = score_rows(first[indices], second[indices], [rows[i] for i in indices])
        if list(results) == [""]:
            scores = results[""]
            return {"main": scores[self.main_metric], **scores}
        metrics = {name: float(np.mean([r[name] for r in results.values()])) for name in next(iter(results.values()))}
        return {"main": metrics[self.main_metric], **metrics} | {s: r[self.main_metric] for s, r in results.items()}
