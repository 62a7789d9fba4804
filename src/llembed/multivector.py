"""Multi-vector texts and late-interaction scoring (ColBERT's MaxSim), for any decoder.

A text is kept as several unit vectors: its chunks' (``chunk_tokens`` tokens each, late or independent, see
:mod:`llembed.chunked`) or its tokens' (chunks of one token read off one causal or bidirectional pass), and
optionally fewer of them after token pooling (similar vectors merged, as PyLate's ``pool_factor``). A query
scores a document by MaxSim: each query vector takes its best similarity among the document's vectors, and
the query's score is their mean (ColBERT sums them; the mean ranks the same and stays on a cosine's scale, so
fusion and thresholds mean the same for a query of one vector or of fifty). ``top`` > 1 takes the mean of each
query vector's best ``top`` similarities instead (a document must match in more than one place).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from llembed.errors import InputError

if TYPE_CHECKING:
    from llembed.embedder import Embedder, Side

Unit = Literal["chunk", "token"]
UNITS: dict[str, str] = {
    "chunk": "the recipe's chunks (chunk_tokens each; read off the whole text under chunking late, else alone)",
    "token": "every text token's state from one pass over the text (windows of max_length), prompt tokens left out",
}

BLOCK_ROWS = 1 << 22
"""Query vectors × document vectors scored at once: bounds the similarity block's memory (16 MB of float32)."""


@dataclass(frozen=True)
class MultiVectors:
    """Many texts' vectors in one (total × d) float32 array, text ``i`` in rows ``offsets[i]:offsets[i + 1]``;
    every text has at least one vector. ``spans``: each vector's character ``[start, end)`` in its text, when
    known (a chunk's, a token's, or what a pooled group of tokens covers)."""

    vectors: np.ndarray
    offsets: np.ndarray
    spans: np.ndarray | None = None

    @classmethod
    def of(
        cls, per_text: Sequence[np.ndarray], normalize: bool = True, spans: Sequence[np.ndarray] | None = None
    ) -> MultiVectors:
        """From each text's (n_i × d) vectors, unit-normalised by default (MaxSim is then a cosine's)."""
        if not per_text:
            raise InputError("multi-vector texts: need at least one text")
        empty = [i for i, rows in enumerate(per_text) if len(rows) == 0]
        if empty:
            raise InputError(f"multi-vector texts: text {empty[0]} has no vectors")
        dims = {np.asarray(rows).shape[1] for rows in per_text}
        if len(dims) > 1:
            raise InputError(f"multi-vector texts: vectors of different dimensions {sorted(dims)}")
        vectors = np.concatenate([np.asarray(rows, np.float32) for rows in per_text])
        if normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        offsets = np.cumsum([0] + [len(rows) for rows in per_text])
        joined = None if spans is None else np.concatenate([np.asarray(s, np.int64).reshape(-1, 2) for s in spans])
        return cls(vectors, offsets, joined)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def text(self, index: int) -> np.ndarray:
        return self.vectors[self.offsets[index] : self.offsets[index + 1]]

    def text_spans(self, index: int) -> np.ndarray | None:
        return None if self.spans is None else self.spans[self.offsets[index] : self.offsets[index + 1]]

    def means(self) -> np.ndarray:
        """Each text's single vector: the mean of its vectors (what mean-of-chunks embedding keeps)."""
        sums = np.add.reduceat(self.vectors, self.offsets[:-1], axis=0)
        return sums / self.counts[:, None]


def maxsim(queries: MultiVectors, documents: MultiVectors, top: int = 1) -> np.ndarray:
    """(queries × documents) late-interaction scores: for each query vector, the mean of its ``top`` best
    similarities (dot products) among a document's vectors (fewer when the document has fewer), averaged over
    the query's vectors. ``top=1`` is MaxSim."""
    if top < 1:
        raise InputError(f"top must be at least 1, not {top}")
    if queries.dim != documents.dim:
        raise InputError(f"query vectors have {queries.dim} dimensions, document vectors {documents.dim}")
    scores = np.zeros((len(queries), len(documents)), np.float32)
    starts = documents.offsets[:-1]
    # documents in blocks so one block of similarities stays within BLOCK_ROWS for the longest query
    longest = int(queries.counts.max())
    bounds = _blocks(documents.offsets, max(1, BLOCK_ROWS // longest))
    for first, last in bounds:
        rows = documents.vectors[documents.offsets[first] : documents.offsets[last]]
        local = starts[first:last] - starts[first]
        for q in range(len(queries)):
            similarity = queries.text(q) @ rows.T  # (query vectors × this block's document vectors)
            if top == 1:
                best = np.maximum.reduceat(similarity, local, axis=1)
            else:
                best = _top_means(similarity, local, documents.counts[first:last], top)
            scores[q, first:last] = best.mean(axis=0)
    return scores


def _blocks(offsets: np.ndarray, rows: int) -> list[tuple[int, int]]:
    """``[first, last)`` document ranges of at most ``rows`` vectors each (a longer document alone)."""
    bounds, first = [], 0
    while first < len(offsets) - 1:
        last = int(np.searchsorted(offsets, offsets[first] + rows, side="right")) - 1
        last = max(last, first + 1)
        bounds.append((first, last))
        first = last
    return bounds


def _top_means(similarity: np.ndarray, starts: np.ndarray, counts: np.ndarray, top: int) -> np.ndarray:
    """Per document, the mean of each row's ``top`` largest values in the document's columns."""
    width = int(counts.max())
    padded = np.full((similarity.shape[0], len(counts), width), -np.inf, np.float32)
    columns = np.arange(width)
    for d, (start, count) in enumerate(zip(starts, counts, strict=True)):
        padded[:, d, :count] = similarity[:, start : start + count]
    keep = min(top, width)
    best = -np.sort(-padded, axis=2)[:, :, :keep]  # descending
    taken = np.minimum(counts, keep)  # a document with fewer vectors averages what it has
    best = np.where(columns[None, None, :keep] < taken[None, :, None], best, 0.0)
    return best.sum(axis=2) / taken[None, :]


def pool_tokens(vectors: np.ndarray, factor: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Token pooling: a text's (n × d) vectors merged into about n / ``factor`` by hierarchical clustering (Ward
    linkage over cosine-normalised vectors), each cluster its mean, with each cluster's member rows; a text of
    fewer than 2 vectors, or ``factor`` 1, is kept as it is. Order follows each cluster's first token."""
    if factor < 1:
        raise InputError(f"pool factor must be at least 1, not {factor}")
    count = len(vectors)
    clusters = max(1, count // factor)
    if factor == 1 or count < 2 or clusters >= count:
        return np.asarray(vectors, np.float32), [np.array([i]) for i in range(count)]
    from scipy.cluster.hierarchy import fcluster, linkage

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    labels = fcluster(linkage(unit.astype(np.float64), method="ward"), t=clusters, criterion="maxclust")
    groups = sorted((np.flatnonzero(labels == label) for label in set(labels.tolist())), key=lambda g: int(g[0]))
    return np.stack([vectors[group].mean(axis=0) for group in groups]).astype(np.float32), groups


def embed_multivector(
    embedder: Embedder,
    texts: Sequence[str],
    unit: Unit = "chunk",
    pool_factor: int = 1,
    side: Side = "document",
    task: str | None = None,
    batch_size: int = 32,
    show_progress_bar: bool | None = None,
) -> MultiVectors:
    """Each text as unit vectors of ``unit`` (:data:`UNITS`), token-pooled by ``pool_factor`` (1: kept as they
    are). A text that is one chunk under ``unit="chunk"`` is its plain vector."""
    if unit not in UNITS:
        raise InputError(f"multi-vector unit must be one of {', '.join(UNITS)}, not {unit!r}")
    reader = embedder
    if unit == "token":  # late chunks of one token: each text token's state in the context before it (or all of
        # it); mean pooling of one token is its state, and with the prompt excluded no chunk takes prompt tokens
        reader = embedder.replace(chunking="late", chunk_tokens=1, chunk_overlap=0, exclude_prompt=True, pooling="mean")
    chunked = reader.pool_chunks(texts, [reader.spec], side, task, batch_size, show_progress_bar)
    embedder.last_stats = reader.last_stats  # the caller's embedder reports what this call cost
    vectors = reader.to_float(reader.format(chunked.pooled[reader.spec], normalize=True))
    parts = chunked.split(vectors, len(texts))
    per_text = [part.vectors for part in parts]
    spans = [np.asarray(part.spans, np.int64).reshape(-1, 2) for part in parts]
    if pool_factor != 1:
        pooled = [pool_tokens(rows, pool_factor) for rows in per_text]
        per_text = [rows for rows, _ in pooled]
        spans = [
            np.array([[kept[group, 0].min(), kept[group, 1].max()] for group in groups], np.int64).reshape(-1, 2)
            for kept, (_, groups) in zip(spans, pooled, strict=True)
        ]
    return MultiVectors.of(per_text, spans=spans)
