"""A task type, whole: how its data is read, the texts it embeds (per side), how it scores the vectors it gets
back, the columns its report shows and the parts of it training data must not hold.

A new task type is one module in this package defining a :class:`Task` subclass with a ``type``; the registry
(:data:`llembed.evaluation.tasks.TASKS`) finds it, and loading, ``llembed eval --type``, the report and
decontamination all read it from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from llembed.errors import InputError
from llembed.evaluation.data_files import (
    Dataset,
    beir_file,
    check_texts,
    line_of,
    load_beir,
    read_table,
    split_file,
)


class Task(ABC):
    type: ClassVar[str] = ""
    """The task type's name (``--type``, ``dataset.json``); a class without one is a base, not registered."""
    main_metric: ClassVar[str] = ""
    metric_columns: ClassVar[tuple[str, ...]] = ()
    """The metrics the report's tables show for this type, main first."""
    fields: ClassVar[tuple[str, ...]] = ()
    """Fields every row of a file-based set holds; a row holding all of them (and no other type's larger set)
    tells the type when none is given (with ``infer``)."""
    text_fields: ClassVar[tuple[str, ...]] = ()
    infer: ClassVar[bool] = True
    marker_file: ClassVar[str | None] = None
    """A file whose presence in a folder tells this type (checked before row fields)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    @classmethod
    def load(cls, dataset: Dataset, split: str) -> None:
        """Fill ``dataset`` from its path: the ``split`` file of a folder (or the single file), its rows checked."""
        file = dataset.path if dataset.path.is_file() else split_file(dataset.path, split)
        dataset.rows = read_table(file, cls.fields)
        check_texts(file, dataset.rows, cls.text_fields)
        for index, row in enumerate(dataset.rows):
            cls.check_row(row, line_of(file, index))

    @classmethod
    def check_row(cls, row: dict, where: str) -> None:
        """Check (and convert in place) one row's non-text fields; ``where`` is ``file:line`` for the error."""
        return None  # most types have text fields only

    @classmethod
    def held_out_parts(cls, dataset: Dataset) -> dict[str, list]:
        """The set's texts by part for decontamination (:mod:`llembed.evaluation.decontamination`): the parts in
        its ``SCORED_PARTS`` are leaks when found in training data, any other part is only reported."""
        return {"texts": [row["text"] for row in dataset.rows]}

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

    fields = ("sentence1", "sentence2")
    text_fields = ("sentence1", "sentence2")

    @classmethod
    def held_out_parts(cls, dataset: Dataset) -> dict[str, list]:
        """``pairs`` (tuples, scored) and their single ``sentences`` (reported only)."""
        pairs = [(row["sentence1"], row["sentence2"]) for row in dataset.rows]
        return {"pairs": pairs, "sentences": [text for pair in pairs for text in pair]}

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


class LabelledTextTask(Task):
    """Tasks over ``text, label`` rows (classification, clustering)."""

    fields = ("text", "label")
    text_fields = ("text",)


class BeirTask(Task):
    """Tasks over a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``)."""

    @classmethod
    def load(cls, dataset: Dataset, split: str) -> None:
        if dataset.path.is_file():
            raise InputError(f"{dataset.path}: {cls.type} data is a BEIR folder, not a file")
        load_beir(dataset, split)

    @classmethod
    def held_out_parts(cls, dataset: Dataset) -> dict[str, list]:
        """The ``queries`` and the ``documents`` ranked, both scored."""
        return {"queries": list(dataset.queries.values()), "documents": list(dataset.corpus.values())}


def has_marker(folder: Path, task: type[Task]) -> bool:
    """Whether ``folder`` holds the file that tells ``task``'s type (``.gz`` allowed)."""
    return task.marker_file is not None and beir_file(folder, task.marker_file) is not None
