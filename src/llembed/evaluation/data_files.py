"""What an evaluation set holds once read (:class:`Dataset`) and the readers of its files: JSON lines and TSV
tables checked row by row, and the BEIR layout. Errors name the file, the line and what is wrong.

Each task type (:mod:`llembed.evaluation.tasks`) says which of these readers fill its dataset.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llembed.errors import InputError
from llembed.io_utils import iter_jsonl, open_text, utf8_file


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


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The rows of a JSON-lines file, each holding the ``required`` fields; an empty file is an error."""
    rows = []
    for number, row in iter_jsonl(path):
        missing = [name for name in required if name not in row]
        if missing:
            raise InputError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def read_tsv(path: Path, required: tuple[str, ...]) -> list[dict]:
    """The rows of a TSV file with a header naming the ``required`` columns (quotes are text, as in STS-B)."""
    with utf8_file(path), path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"{path}:1: header lacks column(s) {', '.join(missing)} (found {reader.fieldnames})")
        rows = [dict(row) for row in reader]
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def read_table(path: Path, required: tuple[str, ...]) -> list[dict]:
    """A ``.jsonl`` or ``.tsv`` table's rows."""
    if path.suffix == ".jsonl":
        return read_jsonl(path, required)
    if path.suffix in (".tsv", ".txt"):
        return read_tsv(path, required)
    raise InputError(f"{path}: expected a .jsonl or .tsv file")


def line_of(path: Path, index: int) -> str:
    """``file:line`` of row ``index`` (a TSV's header is line 1)."""
    return f"{path}:{index + (2 if path.suffix == '.tsv' else 1)}"


def check_texts(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """Every row's ``fields`` are non-empty strings."""
    for index, row in enumerate(rows):
        for name in fields:
            if not isinstance(row[name], str) or not row[name].strip():
                raise InputError(f"{line_of(path, index)}: field {name!r} is not a non-empty string")


def split_file(folder: Path, split: str) -> Path:
    """A folder's ``<split>.jsonl`` or ``<split>.tsv``."""
    for suffix in (".jsonl", ".tsv"):
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    raise InputError(f"{folder}: no {split}.jsonl or {split}.tsv")


def beir_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or its ``.gz``, when there."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_beir(dataset: Dataset, split: str) -> None:
    """Fill ``corpus``, ``queries`` and ``qrels`` from a BEIR folder; queries without judgements are dropped."""
    folder = dataset.path
    for required in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if beir_file(folder, required) is None:
            raise InputError(f"{folder}: retrieval data needs {required} (BEIR layout; .gz allowed)")
    for row in read_jsonl(beir_file(folder, "corpus.jsonl"), ("_id", "text")):
        title = (row.get("title") or "").strip()
        dataset.corpus[str(row["_id"])] = f"{title} {row['text']}".strip() if title else row["text"]
    for row in read_jsonl(beir_file(folder, "queries.jsonl"), ("_id", "text")):
        dataset.queries[str(row["_id"])] = row["text"]
    qrels_file = beir_file(folder, f"qrels/{split}.tsv")
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
