"""The real benchmark sets shipped with llembed (see data/*/SOURCE.txt and licenses), and the quick suite's
fixed subsamples of them."""

from __future__ import annotations

import random
from pathlib import Path

from llembed.errors import InputError
from llembed.evaluation.datasets import Dataset, load_dataset

DATA_DIR = Path(__file__).parent / "data"


def bundled_names() -> list[str]:
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / "dataset.json").is_file())


def load_bundled(name: str) -> Dataset:
    if not (DATA_DIR / name / "dataset.json").is_file():
        raise InputError(f"no bundled dataset {name!r}; bundled: {', '.join(bundled_names())}")
    return load_dataset(DATA_DIR / name)


def subsample_pairs(dataset: Dataset, pairs: int, seed: int = 0) -> Dataset:
    """A fixed random sample of ``pairs`` rows (STS / pair classification / bitext); ``pairs`` per subset when the
    rows have subsets (languages), so every language keeps its share."""
    groups: dict[str, list[dict]] = {}
    for row in dataset.rows:
        groups.setdefault(row.get("subset", ""), []).append(row)
    if all(pairs >= len(rows) for rows in groups.values()):
        return dataset
    rng = random.Random(seed)
    rows = [row for group in groups.values() for row in (rng.sample(group, pairs) if pairs < len(group) else group)]
    per = " per subset" if len(groups) > 1 else ""
    note = f"{pairs}{per} of {len(dataset.rows)} pairs, random sample (seed {seed})"
    return Dataset(dataset.type, dataset.name, dataset.path, dataset.meta, rows=rows, subsample_note=note)


def subsample_retrieval(dataset: Dataset, queries: int, extra_documents: int, seed: int = 0) -> Dataset:
    """``queries`` random judged queries; their judged documents plus ``extra_documents`` random others."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(sorted(dataset.queries), min(queries, len(dataset.queries))))
    judged = {doc for q in chosen for doc in dataset.qrels[q]}
    others = sorted(set(dataset.corpus) - judged)
    extra = set(rng.sample(others, min(extra_documents, len(others))))
    corpus = {doc: text for doc, text in dataset.corpus.items() if doc in judged or doc in extra}
    note = (
        f"{len(chosen)} of {len(dataset.queries)} queries; corpus = their {len(judged)} judged documents + "
        f"{len(extra)} random others ({len(corpus)} of {len(dataset.corpus)}), seed {seed}"
    )
    return Dataset(
        dataset.type,
        dataset.name,
        dataset.path,
        dataset.meta,
        corpus=corpus,
        queries={q: dataset.queries[q] for q in chosen},
        qrels={q: dataset.qrels[q] for q in chosen},
        subsample_note=note,
    )
