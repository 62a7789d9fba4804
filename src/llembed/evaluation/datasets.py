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

Rows of sts / pair / bitext may carry a ``subset`` (a language or pair): each is scored alone, the main score is
their mean. A folder may carry ``dataset.json`` (``{"type": ..., "name": ...}``); otherwise the type is
inferred from files.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llembed.errors import InputError
from llembed.io_utils import iter_jsonl, open_text, utf8_file

TASK_TYPES = ("sts", "pair", "bitext", "classification", "clustering", "retrieval", "reranking")


@dataclass
class Dataset:
    type: str
    name: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)  # sts / pair / clustering / classification test rows
    train: list[dict] = field(default_factory=list)  # classification train rows
    corpus: dict[str, str] = field(default_factory=dict)  # retrieval / reranking
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    subsample_note: str | None = None

    def fingerprint(self) -> str:
        """Hash of the content, so cached results are tied to the exact data evaluated."""
        digest = hashlib.blake2b(digest_size=10)
        payload = (
            self.type,
            self.meta.get("instruction"),
            self.rows,
            self.train,
            sorted(self.corpus.items()),
            sorted(self.queries.items()),
            sorted((q, sorted(d.items())) for q, d in self.qrels.items()),
        )
        digest.update(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode())
        return digest.hexdigest()


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    rows = []
    for number, row in iter_jsonl(path):
        missing = [name for name in required if name not in row]
        if missing:
            raise InputError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def _read_tsv(path: Path, required: tuple[str, ...]) -> list[dict]:
    with utf8_file(path), path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)} (found {reader.fieldnames})")
        rows = [dict(row) for row in reader]
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def _read_table(path: Path, required: tuple[str, ...]) -> list[dict]:
    if path.suffix == ".jsonl":
        return _read_jsonl(path, required)
    if path.suffix in (".tsv", ".txt"):
        return _read_tsv(path, required)
    raise InputError(f"{path}: expected a .jsonl or .tsv file")


def _line(path: Path, index: int) -> str:
    return f"{path}:{index + (2 if path.suffix == '.tsv' else 1)}"


def _check_texts(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    for index, row in enumerate(rows):
        for name in fields:
            if not isinstance(row[name], str) or not row[name].strip():
                raise InputError(f"{_line(path, index)}: field {name!r} is not a non-empty string")


def _split_file(folder: Path, split: str) -> Path:
    for suffix in (".jsonl", ".tsv"):
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    raise InputError(f"{folder}: no {split}.jsonl or {split}.tsv")


def _infer_type(path: Path) -> str:
    if path.is_dir():
        if _beir_file(path, "corpus.jsonl") is not None:
            return "retrieval"
        if (path / "train.jsonl").is_file():
            return "classification"
        path = _split_file(path, "test")
    first = _read_table(path, ())[0]
    if {"sentence1", "sentence2", "score"} <= set(first):
        return "sts"
    if {"sentence1", "sentence2", "label"} <= set(first):
        return "pair"
    if {"text", "label"} <= set(first):
        return "clustering"
    raise InputError(f"{path}: cannot tell the task type from fields {sorted(first)}; pass --type")


def load_dataset(path: str | Path, type: str | None = None, split: str = "test") -> Dataset:
    """Load a dataset folder (or a single STS / pair / clustering file) in the documented layouts."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"dataset not found: {path}")
    meta: dict[str, Any] = {}
    if path.is_dir() and (path / "dataset.json").is_file():
        meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    kind = type or meta.get("type") or _infer_type(path)
    if kind not in TASK_TYPES:
        raise InputError(f"unknown task type {kind!r}; choose one of {', '.join(TASK_TYPES)}")
    name = meta.get("name") or path.stem if path.is_file() else meta.get("name") or path.name
    dataset = Dataset(kind, name, path, meta)
    if kind in ("retrieval", "reranking"):
        _load_beir(dataset, split)
        return dataset
    file = path if path.is_file() else _split_file(path, split)
    if kind == "sts":
        dataset.rows = _read_table(file, ("sentence1", "sentence2", "score"))
        _check_texts(file, dataset.rows, ("sentence1", "sentence2"))
        for index, row in enumerate(dataset.rows):
            try:
                row["score"] = float(row["score"])
            except (TypeError, ValueError) as exc:
                raise InputError(f"{_line(file, index)}: score {row['score']!r} is not a number") from exc
    elif kind == "bitext":
        dataset.rows = _read_table(file, ("sentence1", "sentence2"))
        _check_texts(file, dataset.rows, ("sentence1", "sentence2"))
    elif kind == "pair":
        dataset.rows = _read_table(file, ("sentence1", "sentence2", "label"))
        _check_texts(file, dataset.rows, ("sentence1", "sentence2"))
        for index, row in enumerate(dataset.rows):
            if str(row["label"]) not in ("0", "1"):
                raise InputError(f"{_line(file, index)}: label {row['label']!r} is not 0 or 1")
            row["label"] = int(row["label"])
    else:
        dataset.rows = _read_table(file, ("text", "label"))
        _check_texts(file, dataset.rows, ("text",))
        if kind == "classification":
            if path.is_file():
                raise InputError(f"{path}: classification needs a folder with train and test files")
            train_file = _split_file(path, "train")
            dataset.train = _read_table(train_file, ("text", "label"))
            _check_texts(train_file, dataset.train, ("text",))
    return dataset


def _beir_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_beir(dataset: Dataset, split: str) -> None:
    folder = dataset.path
    for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if _beir_file(folder, required) is None:
            raise InputError(f"{folder}: retrieval data needs {required} (BEIR layout; .gz allowed)")
    for row in _read_jsonl(_beir_file(folder, "corpus.jsonl"), ("_id", "text")):
        title = (row.get("title") or "").strip()
        dataset.corpus[str(row["_id"])] = f"{title} {row['text']}".strip() if title else row["text"]
    for row in _read_jsonl(_beir_file(folder, "queries.jsonl"), ("_id", "text")):
        dataset.queries[str(row["_id"])] = row["text"]
    qrels_file = _beir_file(folder, f"qrels/{split}.tsv")
    with utf8_file(qrels_file), open_text(qrels_file) as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n").split("\t")
            if number == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                raise InputError(f"{qrels_file}:{number}: expected query-id<TAB>corpus-id<TAB>integer score")
            query, doc, score = parts
            if query not in dataset.queries:
                raise InputError(f"{qrels_file}:{number}: query id {query!r} not in queries.jsonl")
            if doc not in dataset.corpus:
                raise InputError(f"{qrels_file}:{number}: corpus id {doc!r} not in corpus.jsonl")
            dataset.qrels.setdefault(query, {})[doc] = int(score)
    dataset.queries = {q: text for q, text in dataset.queries.items() if q in dataset.qrels}


def subset_names(dataset: Dataset) -> list[str]:
    """A multilingual set's subsets: the rows' ``subset`` values, or a retrieval set's ``languages``."""
    if dataset.type in ("retrieval", "reranking"):
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
    if dataset.type in ("retrieval", "reranking"):
        keep = tuple(f"{name}-" for name in names)
        corpus = {d: t for d, t in dataset.corpus.items() if d.startswith(keep)}
        qrels = {
            q: {d: s for d, s in docs.items() if d in corpus} for q, docs in dataset.qrels.items() if q.startswith(keep)
        }
        return replace(dataset, corpus=corpus, queries={q: dataset.queries[q] for q in qrels}, qrels=qrels,
                       subsample_note=note)  # fmt: skip
    return replace(dataset, rows=[row for row in dataset.rows if row.get("subset") in names], subsample_note=note)
