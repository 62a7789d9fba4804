"""Decontamination: how much of an evaluation set a training set holds, exactly and after normalising case,
Unicode form and whitespace, so no reported score comes from a test item the model was trained on.

Each evaluation set is split into *parts* (:func:`held_out_parts`): the items it scores (retrieval queries and
the documents ranked, STS / pair / bitext pairs, classification and clustering test texts) and, for pair sets,
the single sentences. A scored item found in the training data is a **leak**. A pair set's single sentences are
only reported: STS-B was assembled from the STS 2012–2017 tasks, and its official train and test splits share
256 sentences (paired differently) and 12 whole pairs, so sentence overlap is a property of the benchmark while a
shared pair is a leaked test item (drop it with ``on_leak: drop``).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llembed.errors import InputError
from llembed.evaluation.datasets import Dataset, load_dataset
from llembed.evaluation.tasks import TASKS

ALL_BUNDLED = "bundled"
"""In a held-out list: every evaluation set shipped with llembed."""
SCORED_PARTS = ("queries", "documents", "pairs", "texts")
"""Parts whose items a task scores: one found in training data is a leak."""
EXAMPLES_SHOWN = 3


def normalize(text: str) -> str:
    """Case, Unicode compatibility forms and whitespace runs removed: "A  Man\u00a0is" → "a man is"."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _pair_key(first: str, second: str) -> tuple[str, str]:
    return (first, second) if first <= second else (second, first)  # a pair is unordered


def held_out_parts(dataset: Dataset) -> dict[str, list]:
    """An evaluation set's texts by part, as its task type gives them (:meth:`Task.held_out_parts`):
    ``queries`` and ``documents`` (retrieval, reranking); ``pairs`` (tuples) and ``sentences`` (sts, pair,
    bitext); ``texts`` (classification and clustering test rows; a classification set's train split is not held
    out: training on it is what the task's classifier does)."""
    return TASKS[dataset.type].held_out_parts(dataset)


@dataclass
class TrainingTexts:
    """Every text of a training set (queries, positives, negatives, sentences) and its (query, positive) pairs,
    indexed exactly and normalised."""

    exact: set[str] = field(default_factory=set)
    normalized: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    normalized_pairs: set[tuple[str, str]] = field(default_factory=set)

    def add(self, texts: Iterable[str], pair: tuple[str, str] | None = None) -> None:
        for text in texts:
            self.exact.add(text)
            self.normalized.add(normalize(text))
        if pair is not None:
            self.pairs.add(_pair_key(*pair))
            self.normalized_pairs.add(_pair_key(normalize(pair[0]), normalize(pair[1])))

    def add_examples(self, examples: Iterable) -> None:
        """:class:`~llembed.training.data.TrainExample` objects (anything with query/positive/negatives)."""
        for example in examples:
            self.add([example.query, example.positive, *example.negatives], (example.query, example.positive))

    @classmethod
    def of_examples(cls, examples: Iterable) -> TrainingTexts:
        found = cls()
        found.add_examples(examples)
        return found

    @classmethod
    def of_sentences(cls, sentences: Iterable[str]) -> TrainingTexts:
        found = cls()
        found.add(sentences)
        return found

    def holds(self, item: str | tuple[str, str]) -> tuple[bool, bool]:
        """(found exactly, found after normalising)."""
        if isinstance(item, tuple):
            exact = _pair_key(*item) in self.pairs
            return exact, exact or _pair_key(normalize(item[0]), normalize(item[1])) in self.normalized_pairs
        exact = item in self.exact
        return exact, exact or normalize(item) in self.normalized


@dataclass(frozen=True)
class Overlap:
    """How many of one part's items the training data holds."""

    dataset: str
    part: str
    total: int
    exact: int
    normalized: int
    scored: bool
    """Whether the part's items are what the task scores (then an overlap is a leak)."""
    examples: tuple[str, ...] = ()

    @property
    def leaked(self) -> bool:
        return self.scored and self.normalized > 0


@dataclass
class ContaminationReport:
    overlaps: list[Overlap]

    @property
    def leaks(self) -> list[Overlap]:
        return [overlap for overlap in self.overlaps if overlap.leaked]

    def to_dict(self) -> dict:
        return {"overlaps": [asdict(overlap) for overlap in self.overlaps], "leaks": len(self.leaks)}

    def summary(self) -> str:
        """One line per leak, naming the set, the part, the counts and an example."""
        lines = []
        for leak in self.leaks:
            example = f"; e.g. {leak.examples[0]!r:.100}" if leak.examples else ""
            lines.append(
                f"{leak.dataset} {leak.part}: {leak.normalized} of {leak.total} in the training data "
                f"({leak.exact} exactly){example}"
            )
        return "\n".join(lines)

    def table(self, title: str = "Evaluation texts found in the training data"):
        from rich.table import Table

        table = Table(title=title)
        for column in ("evaluation set", "part", "items", "exact", "normalised", "share", "verdict"):
            table.add_column(column, justify="right" if column in ("items", "exact", "normalised", "share") else "left")
        for overlap in self.overlaps:
            share = overlap.normalized / overlap.total if overlap.total else 0.0
            verdict = "LEAK" if overlap.leaked else ("clean" if overlap.normalized == 0 else "shared (not scored)")
            table.add_row(overlap.dataset, overlap.part, str(overlap.total), str(overlap.exact),
                          str(overlap.normalized), f"{share:.2%}", verdict)  # fmt: skip
        return table


def _show(item: str | tuple[str, str]) -> str:
    return " ||| ".join(item) if isinstance(item, tuple) else item


def check(training: TrainingTexts, datasets: Sequence[Dataset]) -> ContaminationReport:
    """Count, for every part of every dataset, the items ``training`` holds (exactly and normalised)."""
    overlaps = []
    for dataset in datasets:
        for part, items in held_out_parts(dataset).items():
            exact = normalized = 0
            examples: list[str] = []
            for item in items:
                found_exact, found_normalized = training.holds(item)
                exact += found_exact
                normalized += found_normalized
                if found_normalized and len(examples) < EXAMPLES_SHOWN:
                    examples.append(_show(item))
            overlaps.append(Overlap(dataset.name, part, len(items), exact, normalized, part in SCORED_PARTS,
                                    tuple(examples)))  # fmt: skip
    return ContaminationReport(overlaps)


@functools.cache
def _bundled(name: str) -> Dataset:
    """A bundled set, read once per process (training runs and tests check against the same sets; only read)."""
    from llembed.evaluation.bundled import load_bundled

    return load_bundled(name)


def load_held_out(names: Sequence[str]) -> list[Dataset]:
    """Evaluation sets by name: ``bundled`` (all of llembed's), a bundled set's name, or a dataset folder/file.
    Test splits only; each set once."""
    from llembed.evaluation.bundled import bundled_names

    bundled = bundled_names()
    chosen: dict[str, Dataset] = {}
    for name in names:
        if name == ALL_BUNDLED:
            for each in bundled:
                chosen.setdefault(each, _bundled(each))
        elif name in bundled:
            chosen.setdefault(name, _bundled(name))
        elif Path(name).exists():
            dataset = load_dataset(name)
            chosen.setdefault(str(dataset.path), dataset)
        else:
            raise InputError(
                f"held-out evaluation set {name!r} is neither a bundled set nor a path; bundled: "
                f"{ALL_BUNDLED} (all), {', '.join(bundled)}"
            )
    return list(chosen.values())


def _scored_lookup(datasets: Sequence[Dataset]) -> TrainingTexts:
    """The held-out scored items as a lookup, to drop the training examples that hold one."""
    scored = TrainingTexts()
    for dataset in datasets:
        for part, items in held_out_parts(dataset).items():
            if part in SCORED_PARTS:
                for item in items:
                    if isinstance(item, tuple):
                        scored.add([], item)
                    else:
                        scored.add([item])
    return scored


def drop_leaks(examples: Sequence, datasets: Sequence[Dataset]) -> tuple[list, list]:
    """(kept, dropped): an example is dropped when one of its texts is a held-out scored text, or its (query,
    positive) is a held-out pair, after normalising."""
    held = _scored_lookup(datasets)
    kept, dropped = [], []
    for example in examples:
        texts = [example.query, example.positive, *example.negatives]
        hit = held.holds((example.query, example.positive))[1] or any(held.holds(text)[1] for text in texts)
        (dropped if hit else kept).append(example)
    return kept, dropped
