"""Hard-negative mining: retrieve with an embedder (or BM25) and keep high-ranked passages that are not the
positive and not near-duplicates of it.

A candidate is skipped when it is one of the query's positives or the query itself (by normalised text), when
it ranks within ``skip_top``, or when its score reaches ``max_positive_ratio`` × the positive's score — the
"positive-aware" filter of NV-Retriever (Moreira et al., 2024), which keeps false negatives out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from tqdm.auto import tqdm

from llembed.errors import InputError
from llembed.output import unit_rows
from llembed.training.data import TrainExample

QUERY_BLOCK = 512  # queries scored at once: bounds the (queries × corpus) score block


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class MiningReport:
    examples: int
    negatives_written: int
    skipped: Counter
    short: int
    """Examples that got fewer than ``num_negatives`` new negatives (the candidates ran out)."""

    def summary(self) -> str:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items())) or "none"
        return (
            f"{self.examples} examples, {self.negatives_written} negatives written; candidates skipped: {reasons}; "
            f"{self.short} examples got fewer negatives than asked"
        )


def _scores_embedder(embedder, queries: Sequence[str], corpus: Sequence[str], instruction: str | None, batch_size):
    documents = unit_rows(embedder.to_float(embedder.encode_documents(list(corpus), batch_size=batch_size)))
    for start in range(0, len(queries), QUERY_BLOCK):
        block = embedder.encode_queries(
            list(queries[start : start + QUERY_BLOCK]), task=instruction, batch_size=batch_size
        )
        yield start, unit_rows(embedder.to_float(block)) @ documents.T


def _scores_bm25(queries: Sequence[str], corpus: Sequence[str]):
    from llembed.bm25 import BM25

    index = BM25.build(corpus)
    for start in range(0, len(queries), QUERY_BLOCK):
        yield start, index.scores(queries[start : start + QUERY_BLOCK])


def mine_hard_negatives(
    examples: Sequence[TrainExample],
    retriever,
    corpus: Sequence[str] | None = None,
    num_negatives: int = 3,
    skip_top: int = 0,
    max_positive_ratio: float | None = 0.95,
    replace_existing: bool = False,
    batch_size: int = 32,
) -> tuple[list[TrainExample], MiningReport]:
    """Add ``num_negatives`` mined negatives to each example. ``retriever``: an :class:`~llembed.Embedder` or
    ``"bm25"``. ``corpus``: the passages to mine from (the examples' positives are always added)."""
    if num_negatives <= 0:
        raise InputError(f"num_negatives must be positive, not {num_negatives}")
    if skip_top < 0:
        raise InputError(f"skip_top must be ≥ 0, not {skip_top}")
    pool: dict[str, str] = {}  # normalised → text; the first spelling wins
    for text in list(corpus or []) + [e.positive for e in examples] + [n for e in examples for n in e.negatives]:
        pool.setdefault(normalized(text), text)
    keys = list(pool)
    index = {key: i for i, key in enumerate(keys)}
    texts = [pool[key] for key in keys]
    positives_of: dict[str, set[int]] = defaultdict(set)
    for example in examples:
        positives_of[normalized(example.query)].add(index[normalized(example.positive)])

    skipped: Counter = Counter()
    mined: list[list[str]] = [[] for _ in examples]
    by_task: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_task[(example.task, example.instruction)].append(i)
    bar = tqdm(total=len(examples), desc="mining", unit="query", disable=len(examples) < 100)
    for (_, instruction), rows in by_task.items():
        queries = [examples[i].query for i in rows]
        blocks = (
            _scores_bm25(queries, texts)
            if retriever == "bm25"
            else _scores_embedder(retriever, queries, texts, instruction, batch_size)
        )
        for start, scores in blocks:
            for offset, row_scores in enumerate(scores):
                i = rows[start + offset]
                mined[i] = _pick(
                    examples[i],
                    row_scores,
                    texts,
                    index,
                    positives_of,
                    num_negatives,
                    skip_top,
                    max_positive_ratio,
                    skipped,
                )
                bar.update(1)
    bar.close()

    out, short, written = [], 0, 0
    for example, negatives in zip(examples, mined, strict=True):
        short += len(negatives) < num_negatives
        written += len(negatives)
        kept = [] if replace_existing else list(example.negatives)
        kept += [n for n in negatives if normalized(n) not in {normalized(k) for k in kept}]
        out.append(
            replace(example, negatives=tuple(kept), scores=None if kept != list(example.negatives) else example.scores)
        )
    return out, MiningReport(len(examples), written, skipped, short)


def _pick(example, scores, texts, index, positives_of, count, skip_top, ratio, skipped) -> list[str]:
    query_key = normalized(example.query)
    own = positives_of[query_key]
    positive_score = float(scores[index[normalized(example.positive)]])
    existing = {normalized(n) for n in example.negatives}
    picked: list[str] = []
    for rank, candidate in enumerate(np.argsort(-scores, kind="stable")):
        if len(picked) == count:
            break
        key = normalized(texts[candidate])
        if candidate in own or key == query_key:
            skipped["positive or query"] += 1
        elif rank < skip_top:
            skipped["in skip_top"] += 1
        elif ratio is not None and positive_score > 0 and scores[candidate] >= ratio * positive_score:
            skipped["near-duplicate (score ≥ ratio × positive)"] += 1
        elif key in existing:
            skipped["already a negative"] += 1
        else:
            picked.append(texts[candidate])
    return picked
