"""Retrieve, then rerank: a search's hits rescored by a :class:`~llembed.Reranker`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from llembed.fusion import RERANK_WEIGHT, blend_rerank
from llembed.index.search import Hit
from llembed.reranker import Reranker


def rerank_hits(
    reranker: Reranker,
    query: str,
    hits: Sequence[Hit],
    k: int | None = None,
    batch_size: int = 32,
    weight: float = RERANK_WEIGHT,
) -> list[Hit]:
    """The best ``k`` of ``hits`` (all by default) by the reranker's score, blended with the search's at
    ``weight`` (:func:`llembed.fusion.blend_rerank`; 1: the reranker's alone), best first; each keeps its rank and
    score in the search. A chunk index's hit is judged on its best passage, any other on its text."""
    if not hits:
        return []
    judged = reranker.score(query, [hit.passage or hit.text for hit in hits], batch_size=batch_size)
    scores = blend_rerank([hit.score for hit in hits], judged, weight).tolist()
    order = sorted(range(len(hits)), key=lambda i: -scores[i])[:k]
    return [
        dataclasses.replace(hits[i], score=scores[i], retrieval_rank=i + 1, retrieval_score=hits[i].score)
        for i in order
    ]
