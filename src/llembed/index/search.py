"""Load an index folder written by :func:`build_index` and search it: dense, sparse, BM25, or a fusion of them
(the modes of :mod:`llembed.fusion`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from llembed.embedder import Embedder, PoolSpec
from llembed.errors import InputError
from llembed.fusion import DEFAULT_FUSION, channels_of, check_fusion, fuse, modes_of
from llembed.index.build import recipe_hash
from llembed.io_utils import iter_jsonl
from llembed.output import unit_rows
from llembed.recipe import Recipe

CANDIDATES_PER_HIT = 10
"""A fused search fuses each channel's top ``k · CANDIDATES_PER_HIT``."""
CANDIDATES_PER_VECTOR = 64
"""A multi-vector search: each query vector's nearest rows (at least this many, or ``k · CANDIDATES_PER_HIT``)
name the candidate documents that MaxSim then scores exactly over all their vectors (ColBERT's two stages)."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str
    span: tuple[int, int] | None = None
    """In a chunk index: the character span of the document's best-matching chunk."""
    retrieval_rank: int | None = None
    """After reranking (``score`` is then the reranker's): the hit's rank (1 = first) and score in the search."""
    retrieval_score: float | None = None

    @property
    def passage(self) -> str | None:
        """The best-matching chunk's text (chunk indexes only)."""
        return None if self.span is None else self.text[self.span[0] : self.span[1]]

    def to_dict(self) -> dict:
        data = {"id": self.id, "score": self.score, "text": self.text}
        if self.span is not None:
            data |= {"span": list(self.span), "passage": self.passage}
        if self.retrieval_rank is not None:
            data |= {"retrieval_rank": self.retrieval_rank, "retrieval_score": self.retrieval_score}
        return data


class VectorIndex:
    def __init__(self, path: Path, embedder: Embedder | None = None) -> None:
        import faiss

        self.path = Path(path)
        self.manifest = self.read_manifest(self.path)
        self.recipe = Recipe.load(self.path / "recipe.yaml")
        if embedder is not None and embedder.recipe.chunking == "auto":  # the index recorded what auto chose
            embedder = embedder.replace(chunking=self.recipe.chunking, chunk_tokens=self.recipe.chunk_tokens)
        if embedder is None:
            embedder = Embedder.from_recipe(self.recipe)
        elif recipe_hash(embedder) != self.manifest["recipe_hash"]:
            raise InputError(
                f"{self.path} was built with another recipe than the embedder given: its vectors and the queries' "
                "would not be comparable"
            )
        self.embedder = embedder
        self.dense = faiss.read_index(str(self.path / "dense.faiss"))
        if hasattr(self.dense, "hnsw"):
            self.dense.hnsw.efSearch = 128
        self.lexical = scipy.sparse.load_npz(self.path / "sparse.npz").tocsc() if self.manifest["sparse"] else None
        self.bm25 = None
        if self.manifest.get("bm25"):  # indexes built before the BM25 channel have none
            from llembed.bm25 import BM25

            self.bm25 = BM25.load(self.path / "bm25")
        rows = [row for _, row in iter_jsonl(self.path / "docs.jsonl")]
        self.ids = [row["id"] for row in rows]
        self.texts = [row["text"] for row in rows]
        self.chunks = np.load(self.path / "chunks.npy") if self.manifest.get("chunks") else None
        """Per vector (document number, start, end) in a chunk index; ``None`` when a vector is a document."""
        self.multivector = self.manifest.get("multivector")
        """A multi-vector index's ``{"unit", "pool_factor"}``; ``None`` for others."""
        self._row_vectors = None

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None) -> VectorIndex:
        return cls(Path(path), embedder)

    @staticmethod
    def read_manifest(path: str | Path) -> dict:
        """An index folder's manifest (recipe, recipe hash, count, kind), without loading the index."""
        manifest_file = Path(path) / "manifest.json"
        if not manifest_file.is_file():
            raise InputError(f"{path} is not an llembed index (no manifest.json; build one with `llembed index build`)")
        return json.loads(manifest_file.read_text(encoding="utf-8"))

    def __len__(self) -> int:
        """Documents in the index (a chunk index holds more vectors)."""
        return len(self.ids)

    @property
    def rows(self) -> int:
        """Vectors in the index: one per document, or one per chunk."""
        return len(self.ids) if self.chunks is None else len(self.chunks)

    @property
    def channels(self) -> tuple[str, ...]:
        """The retrievers this index holds: ``dense`` always, ``sparse`` and ``bm25`` when built with them."""
        return self.channels_of_manifest(self.manifest)

    @staticmethod
    def channels_of_manifest(manifest: dict) -> tuple[str, ...]:
        """:attr:`channels` read off a manifest, without loading the index or its model."""
        if manifest.get("multivector"):
            return ("multivector",)
        return ("dense",) + ("sparse",) * bool(manifest["sparse"]) + ("bm25",) * bool(manifest.get("bm25"))

    @property
    def modes(self) -> tuple[str, ...]:
        """The search modes this index can answer, its default first."""
        return modes_of(self.channels)

    def search(
        self,
        queries: str | list[str],
        k: int = 10,
        mode: str = "dense",
        fusion: str = DEFAULT_FUSION,
        weights: Mapping[str, float] | None = None,
    ) -> list[list[Hit]]:
        """Top ``k`` documents for each query (one list per query). ``fusion`` (``rrf`` or ``weighted``) and
        ``weights`` (per channel) decide how a mode of several channels ranks."""
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        channels = self._check(k, mode, fusion, weights)
        if channels == ("multivector",):
            return self.search_multivector(texts, k)
        pooled = {}
        if {"dense", "sparse"} & set(channels):  # BM25 alone needs no forward pass
            pooled = self.embedder.pool(texts, self.embedder.specs(sparse="sparse" in channels), side="query")
        return self.search_pooled(pooled, k, mode, texts, fusion, weights)

    def search_multivector(self, texts: list[str], k: int = 10) -> list[list[Hit]]:
        """Late interaction: each query's vectors (of the index's unit) pick candidate documents by their nearest
        rows, then MaxSim over all of a candidate's vectors ranks them; a hit's span is its row that matched a
        query vector best."""
        from llembed.multivector import MultiVectors, embed_multivector, maxsim

        channels_of("multivector", self.channels, self.path.name)
        k = min(k, len(self))
        queries = embed_multivector(self.embedder, texts, self.multivector["unit"], 1, "query")
        depth = min(self.rows, max(CANDIDATES_PER_VECTOR, k * CANDIDATES_PER_HIT))
        _, nearest = self.dense.search(queries.vectors, depth)
        rows = self.row_vectors
        starts = np.searchsorted(self.chunks[:, 0], np.arange(len(self) + 1))  # each document's first row
        results = []
        for query in range(len(queries)):
            picked = nearest[queries.offsets[query] : queries.offsets[query + 1]]
            candidates = np.unique(self.chunks[picked[picked >= 0], 0])
            documents = MultiVectors.of([rows[starts[d] : starts[d + 1]] for d in candidates], normalize=False)
            mine = MultiVectors.of([queries.text(query)], normalize=False)
            scores = maxsim(mine, documents)[0]
            hits = []
            for position in np.argsort(-scores, kind="stable")[:k]:
                document = int(candidates[position])
                best = int(np.argmax((documents.text(position) @ mine.vectors.T).max(axis=1)))
                _, start, end = (int(x) for x in self.chunks[starts[document] + best])
                hits.append(Hit(self.ids[document], float(scores[position]), self.texts[document], (start, end)))
            results.append(hits)
        return results

    @property
    def row_vectors(self) -> np.ndarray:
        """Every row's unit vector, read back from the faiss index once (MaxSim scores candidates exactly)."""
        if self._row_vectors is None:
            self._row_vectors = self.dense.reconstruct_n(0, self.dense.ntotal)
        return self._row_vectors

    def search_pooled(
        self,
        by_spec: Mapping[PoolSpec, torch.Tensor],
        k: int = 10,
        mode: str = "dense",
        texts: list[str] | None = None,
        fusion: str = DEFAULT_FUSION,
        weights: Mapping[str, float] | None = None,
    ) -> list[list[Hit]]:
        """Search with queries already pooled by :meth:`Embedder.pool` for ``embedder.specs(sparse)`` (e.g. by
        the server's batcher); ``texts`` (the queries themselves) for modes with the ``bm25`` channel."""
        channels = self._check(k, mode, fusion, weights)
        if channels == ("multivector",):
            if texts is None:
                raise ValueError("mode 'multivector' embeds the queries its own way: pass the query texts")
            return self.search_multivector(texts, k)
        if "bm25" in channels and texts is None:
            raise ValueError(f"mode {mode!r} reads BM25: pass the query texts")
        count = len(texts) if texts is not None else len(by_spec[self.embedder.spec])
        k = min(k, len(self))
        # a chunk index ranks chunks and keeps each document's best: read deeper for k distinct documents
        wide = len(channels) > 1 or self.chunks is not None
        depth = min(self.rows, k * CANDIDATES_PER_HIT) if wide else k
        found: dict[str, list[dict[int, float]]] = {}
        if "dense" in channels:
            pooled = by_spec[self.embedder.spec]
            vectors = unit_rows(self.embedder.to_float(self.embedder.format(pooled)).astype(np.float32))
            scores, rows = self.dense.search(vectors, depth)
            found["dense"] = [
                {int(r): float(s) for r, s in zip(rs, ss, strict=True) if r >= 0}  # faiss pads with -1
                for rs, ss in zip(rows, scores, strict=True)
            ]
        if "sparse" in channels:
            weights_by_row = (self.embedder.sparse(by_spec) @ self.lexical.T).toarray()  # (queries, rows)
            found["sparse"] = []
            for row_scores in weights_by_row:
                top = np.argsort(-row_scores, kind="stable")[:depth]
                found["sparse"].append({int(r): float(row_scores[r]) for r in top})
        if "bm25" in channels:
            found["bm25"] = self.bm25.top(texts, depth)
        results = []
        for query in range(count):
            if len(channels) == 1:
                scored = found[channels[0]][query]
            else:
                rows = sorted(set().union(*(found[c][query] for c in channels)))
                table = {c: np.array([[found[c][query].get(r, np.nan) for r in rows]]) for c in channels}
                scored = dict(zip(rows, fuse(table, fusion, weights)[0].tolist(), strict=True)) if rows else {}
            ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
            results.append(self._hits(ranked, k))
        return results

    def _hits(self, ranked: list[tuple[int, float]], k: int) -> list[Hit]:
        if self.chunks is None:
            return [Hit(self.ids[row], score, self.texts[row]) for row, score in ranked[:k]]
        hits: dict[int, Hit] = {}  # each document once, at its best chunk (MaxP)
        for row, score in ranked:
            document, start, end = (int(x) for x in self.chunks[row])
            if document not in hits:
                hits[document] = Hit(self.ids[document], score, self.texts[document], (start, end))
                if len(hits) == k:
                    break
        return list(hits.values())

    def _check(self, k: int, mode: str, fusion: str, weights: Mapping[str, float] | None) -> tuple[str, ...]:
        channels = channels_of(mode, self.channels, self.path.name)
        check_fusion(fusion, weights, channels)
        if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
            raise InputError(f"k must be a positive integer, not {k!r}")
        return channels
