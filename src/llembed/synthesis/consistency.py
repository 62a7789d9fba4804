"""Consistency filtering (as in E5-Mistral / Gecko / Promptagator): keep an example only if an embedder
retrieves its positive within the top ``k`` from a pool of every example's documents (plus a corpus)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from llembed.output import unit_rows
from llembed.synthesis.parsing import normalized


def consistent(records: Sequence[dict], embedder, top_k: int = 3, corpus: Sequence[str] = ()) -> list[bool]:
    """One flag per record: is its positive among the top ``k`` documents for its query?"""
    pool: dict[str, str] = {}
    for text in [r["positive"] for r in records] + [n for r in records for n in r.get("negatives", [])] + list(corpus):
        pool.setdefault(normalized(text), text)
    keys = list(pool)
    index = {key: i for i, key in enumerate(keys)}
    documents = unit_rows(embedder.to_float(embedder.encode_documents([pool[k] for k in keys])))
    flags = [False] * len(records)
    by_instruction: dict[str | None, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_instruction[record.get("instruction")].append(i)
    for instruction, rows in by_instruction.items():
        queries = embedder.encode_queries([records[i]["query"] for i in rows], task=instruction)
        scores = unit_rows(embedder.to_float(queries)) @ documents.T
        for row, i in enumerate(rows):
            target = scores[row, index[normalized(records[i]["positive"])]]
            flags[i] = int((scores[row] > target).sum()) < top_k
    return flags
