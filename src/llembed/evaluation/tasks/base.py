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
    """Tasks over ``sentence1, sentence2`` rows (STS, pair classification): both sides are plain texts."""

    def requests(self) -> dict[str, list[str]]:
        rows = self.dataset.rows
        return {"text": unique([r["sentence1"] for r in rows] + [r["sentence2"] for r in rows])}

    def pair_vectors(self, vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        get = lookup(self.requests()["text"], vectors["text"])
        rows = self.dataset.rows
        return get([r["sentence1"] for r in rows]), get([r["sentence2"] for r in rows])
