"""Evaluation data in documented local layouts; errors name the file, the line and what is wrong.

| type | files | fields |
|---|---|---|
| sts | ``test.jsonl`` or ``test.tsv`` (or a single file) | ``sentence1, sentence2, score`` |
| pair | ``test.jsonl`` / ``.tsv`` | ``sentence1, sentence2, label`` (0/1) |
| bitext | ``test.jsonl`` / ``.tsv`` | ``sentence1, sentence2`` (row i of one language translates row i of the other) |
| classification | ``train.jsonl`` and ``test.jsonl`` | ``text, label`` |
| clustering | ``test.jsonl`` | ``text, label`` |
| retrieval | BEIR: ``corpus.jsonl`` (``_id, title, text``), ``queries.jsonl`` (``_id, text``), ``qrels/test.tsv`` | |
| reranking | BEIR layout; each query's candidates are its qrels rows (score 0 = negative) | |

Each type's reading lives on its task class (:mod:`llembed.evaluation.tasks`), the files' readers in
:mod:`llembed.evaluation.data_files`.

Rows of sts / pair / bitext may carry a ``subset`` (a language or pair): each is scored alone, the main score is
their mean. A folder may carry ``dataset.json`` (``{"type": ..., "name": ...}``); otherwise the type is
inferred from files.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from llembed.errors import InputError
from llembed.evaluation.data_files import Dataset, read_table, split_file
from llembed.evaluation.tasks import TASK_TYPES, TASKS
from llembed.evaluation.tasks.base import BeirTask, has_marker

__all__ = ["TASK_TYPES", "Dataset", "load_dataset", "select_subsets", "subset_names"]


def _infer_type(path: Path) -> str:
    """A folder's marker file first (BEIR's corpus → retrieval, a train split → classification), then the first
    row's fields: the type needing the most of them wins."""
    if path.is_dir():
        for kind, task in TASKS.items():
            if has_marker(path, task):
                return kind
        path = split_file(path, "test")
    first = set(read_table(path, ())[0])
    fitting = [task for task in TASKS.values() if task.infer and task.fields and set(task.fields) <= first]
    if not fitting:
        raise InputError(f"{path}: cannot tell the task type from fields {sorted(first)}; pass --type")
    return max(fitting, key=lambda task: len(task.fields)).type


def load_dataset(path: str | Path, type: str | None = None, split: str = "test") -> Dataset:
    """Load a dataset folder (or a single STS / pair / clustering file) in the documented layouts."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset not found: {path}")
    meta: dict[str, Any] = {}
    if path.is_dir() and (path / "dataset.json").is_file():
        meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    kind = type or meta.get("type") or _infer_type(path)
    if kind not in TASKS:
        raise InputError(f"unknown task type {kind!r}; choose one of {', '.join(TASK_TYPES)}")
    name = meta.get("name") or path.stem if path.is_file() else meta.get("name") or path.name
    dataset = Dataset(kind, name, path, meta)
    TASKS[kind].load(dataset, split)
    return dataset


def subset_names(dataset: Dataset) -> list[str]:
    """A multilingual set's subsets: the rows' ``subset`` values, or a retrieval set's ``languages``."""
    if issubclass(TASKS[dataset.type], BeirTask):
        return list(dataset.meta.get("languages", []))
    return list(dict.fromkeys(row["subset"] for row in dataset.rows if "subset" in row))


def select_subsets(dataset: Dataset, names: list[str]) -> Dataset:
    """Only the named subsets (languages): pair rows of those subsets; for a multilingual retrieval set, the
    queries and documents whose ids start with ``<language>-``. An unknown name is an error listing the known."""
    known = subset_names(dataset)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        have = ", ".join(known) if known else "none (it is not a multilingual set)"
        raise InputError(
            f"unknown subset {', '.join(map(repr, unknown)) or '(none given)'} of {dataset.name}; it has {have}"
        )
    note = f"subsets {', '.join(names)} of {len(known)}"
    if issubclass(TASKS[dataset.type], BeirTask):
        keep = tuple(f"{name}-" for name in names)
        corpus = {d: t for d, t in dataset.corpus.items() if d.startswith(keep)}
        qrels = {
            q: {d: s for d, s in docs.items() if d in corpus} for q, docs in dataset.qrels.items() if q.startswith(keep)
        }
        return replace(dataset, corpus=corpus, queries={q: dataset.queries[q] for q in qrels}, qrels=qrels,
                       subsample_note=note)  # fmt: skip
    return replace(dataset, rows=[row for row in dataset.rows if row.get("subset") in names], subsample_note=note)
