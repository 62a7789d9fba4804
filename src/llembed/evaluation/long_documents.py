"""Long documents and long queries, read several ways and scored every way that pairs them.

Each side of a retrieval set is embedded once per *reading* (:data:`READINGS`): cut at a length, or kept as the
vectors of its chunks (embedded alone, or late: pooled from one pass over the text, causal or bidirectional),
or of its tokens. Every pairing of a query reading with a document reading is then scored each way it allows
(:data:`SCORINGS`): one vector a side (a chunked text's is the mean of its chunks, what ``chunking: mean`` and
``late`` give), MaxSim over chunk or token vectors (a document scores by its best chunk for each query vector:
MaxP for a one-vector query), or the mean of each query vector's best two. The pairings cost nothing more than
the readings, so one run answers "which reading, which scoring" for a collection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llembed.chunked import resolve_chunking, with_chunking
from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.evaluation.datasets import Dataset
from llembed.evaluation.evaluate import evaluate, query_instruction
from llembed.evaluation.tasks import make_task
from llembed.evaluation.tasks.retrieval import RetrievalTask
from llembed.multivector import MultiVectors, embed_multivector, maxsim

CHUNK_TOKENS = 256


def readings(chunk_tokens: int = CHUNK_TOKENS, window: int = 8192) -> dict[str, dict]:
    """Reading name → recipe changes (and ``unit`` for multi-vector readings)."""
    chunks = {"chunk_tokens": chunk_tokens, "chunk_overlap": 0}
    return {
        f"cut {chunk_tokens}": {"truncation": True, "max_length": chunk_tokens},
        f"cut {2 * chunk_tokens}": {"truncation": True, "max_length": 2 * chunk_tokens},
        "whole": {"truncation": True, "max_length": window},
        "chunks": {"unit": "chunk", "chunking": "mean", "max_length": 2 * chunk_tokens, **chunks},
        "late chunks": {"unit": "chunk", "chunking": "late", "max_length": window, **chunks},
        "late chunks, bidirectional": {
            "unit": "chunk", "chunking": "late", "max_length": window, "bidirectional": True, **chunks},
        "tokens": {"unit": "token", "max_length": window},
    }  # fmt: skip


READINGS = tuple(readings())
SCORINGS = {
    "vector": "one vector a side (a chunked text's: the mean of its chunks)",
    "maxsim": "MaxSim over the vectors kept (a one-vector query: the document's best chunk, MaxP)",
    "top2": "each query vector's mean of its best two among the document's vectors",
}


@dataclass(frozen=True)
class Read:
    """One side read one way: its vectors (one a text for a cut), each text's mean vector, and the seconds."""

    multi: MultiVectors
    means: np.ndarray
    seconds: float
    kept: bool


def read_side(
    embedder: Embedder, texts: Sequence[str], changes: dict, side: str, task: str | None, batch_size: int
) -> Read:
    changes = dict(changes)
    unit = changes.pop("unit", None)
    reader = embedder.replace(**changes)
    started = time.perf_counter()
    if unit is None:
        vectors = reader.to_float(reader.encode(list(texts), batch_size, True, task, False, side))
        multi = MultiVectors.of([row[None, :] for row in vectors])
        return Read(multi, multi.vectors, time.perf_counter() - started, False)
    if unit == "token":
        multi = embed_multivector(reader, texts, "token", 1, side, task, batch_size, False)
        means = multi.means()
    else:  # the mean of un-normalised chunk vectors, as the recipe's chunking gives a text's vector
        chunked = reader.pool_chunks(texts, [reader.spec], side, task, batch_size, False)
        raw = reader.to_float(reader.format(chunked.pooled[reader.spec], normalize=False))
        parts = chunked.split(raw, len(texts))
        multi = MultiVectors.of([part.vectors for part in parts])
        means = np.stack([part.vectors.mean(axis=0) for part in parts])
    means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return Read(multi, means.astype(np.float32), time.perf_counter() - started, True)


def score_pairings(task: RetrievalTask, queries: dict[str, Read], documents: dict[str, Read]) -> list[dict]:
    """nDCG@10 (and the other retrieval scores) of every query reading × document reading × scoring."""
    rows = []
    for query_name, query in queries.items():
        for document_name, document in documents.items():
            scorings = {"vector": query.means @ document.means.T}
            if query.kept or document.kept:
                scorings["maxsim"] = maxsim(query.multi, document.multi, 1)
                scorings["top2"] = maxsim(query.multi, document.multi, 2)
            for scoring, similarity in scorings.items():
                found = task.score_similarity(similarity)
                rows.append({"query": query_name, "document": document_name, "scoring": scoring, **found})
    return rows


def evaluate_long(
    embedder: Embedder,
    task: RetrievalTask,
    query_readings: Sequence[str],
    document_readings: Sequence[str],
    chunk_tokens: int = CHUNK_TOKENS,
    batch_size: int = 8,
    cache=None,
) -> tuple[list[dict], dict[str, float]]:
    """Every pairing's scores and each reading's seconds (``"query: cut 256"`` → s). ``cache(side, reading,
    compute)`` may hand back a side already read (a resumable driver keeps them on disk)."""
    window = min(8192, embedder.backbone.max_positions)
    known = readings(chunk_tokens, window)
    unknown = [name for name in (*query_readings, *document_readings) if name not in known]
    if unknown:
        raise InputError(f"unknown reading {unknown[0]!r}; choose from {', '.join(known)}")
    requests = task.requests()
    instruction = query_instruction(embedder, task)
    read: dict[str, dict[str, Read]] = {"query": {}, "document": {}}
    for side, names in (("query", query_readings), ("document", document_readings)):
        for name in names:
            compute = lambda s=side, n=name: read_side(  # noqa: E731
                embedder, requests[s], known[n], s, instruction if s == "query" else None, batch_size
            )
            read[side][name] = compute() if cache is None else cache(side, name, compute)
    seconds = {f"{side}: {name}": r.seconds for side, by in read.items() for name, r in by.items()}
    return score_pairings(task, read["query"], read["document"]), seconds


AUTO_CANDIDATES = ("first", "mean", "none")
"""What ``chunking: auto`` chooses among when a labelled sample settles it (``none``: texts cut at the window)."""


def choose_chunking_on_sample(
    embedder: Embedder, sample: Dataset, candidates: Sequence[str] = AUTO_CANDIDATES, batch_size: int = 32
) -> tuple[Embedder, dict[str, float]]:
    """``chunking: auto`` settled by a small labelled retrieval sample of the user's own collection (queries,
    documents and judgements in BEIR layout) instead of the length rule: each candidate is scored on it
    (nDCG@10) and the best kept; a tie goes to the length rule's choice for the sample's documents. Returns the
    embedder with that chunking (any other recipe as it is) and every candidate's score."""
    if embedder.recipe.chunking != "auto":
        return embedder, {}
    if sample.type != "retrieval":
        raise InputError(f"a chunking sample must be a labelled retrieval set, not {sample.type!r}")
    unknown = sorted(set(candidates) - set(AUTO_CANDIDATES))
    if unknown or not candidates:
        raise InputError(f"chunking candidates must be among {', '.join(AUTO_CANDIDATES)}, not {unknown}")
    task = make_task(sample)
    by_rule = resolve_chunking(embedder, list(sample.corpus.values())).recipe.chunking
    # evaluation cuts over-long texts whatever the recipe's truncation (as mteb does), so each candidate scores
    # as the embedder it would become
    scores = {
        candidate: evaluate(with_chunking(embedder, candidate), task, batch_size)[0].scores["ndcg_at_10"]
        for candidate in candidates
    }
    best = max(scores, key=lambda name: (scores[name], name == by_rule))
    return with_chunking(embedder, best), scores
