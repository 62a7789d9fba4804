"""Hybrid retrieval: which channels a search ``mode`` combines, and how their rankings are fused.

One rule for the index (``llembed search``, ``/v1/search``) and the evaluation (``llembed eval``), so what the
evaluation measures is what a search returns. Channels: ``dense`` (cosine of the recipe's vectors), ``sparse``
(LM-head lexical weights), ``bm25`` (bm25s over the same texts) and ``multivector`` (MaxSim over a multi-vector
index's token or chunk vectors; it fuses with nothing).

Scores come as (queries × candidates) arrays with NaN where a channel did not retrieve a candidate (an index
reads only each channel's top rows; the evaluation scores every document, so nothing is missing there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from llembed.errors import InputError

MODES: dict[str, tuple[str, ...]] = {
    "dense": ("dense",),
    "sparse": ("sparse",),
    "bm25": ("bm25",),
    "hybrid": ("dense", "sparse"),  # the name it has had since the sparse channel came: dense + LM-head sparse
    "dense+sparse": ("dense", "sparse"),
    "dense+bm25": ("dense", "bm25"),
    "dense+sparse+bm25": ("dense", "sparse", "bm25"),
    "multivector": ("multivector",),  # late interaction (MaxSim) over a multi-vector index's token or chunk vectors
}
"""Search mode → the channels it fuses."""

FUSIONS = ("rrf", "weighted")
DEFAULT_FUSION = "weighted"
"""Min-max weighting, half and half, as ``hybrid`` always mixed. Measured on SciFact with smollm2-135m-tuned
(dense 35.91, BM25 68.63 nDCG@10): dense+bm25 weighted 69.51, RRF 56.30. RRF gives a weak channel's top ranks
as much say as a strong one's; weighting by score lets BM25's clear wins stand."""
RRF_K = 60
"""Reciprocal-rank fusion's constant (Cormack et al. 2009): a channel's rank r adds weight / (RRF_K + r)."""
RERANK_WEIGHT = 1.0
"""A reranker's share when its scores are blended with the first stage's (:func:`blend_rerank`); 1 = its order
alone. A weak reranker does better blended: smollm2-135m-reranker over smollm2-135m-tuned's dense top 20 on
SciFact gives nDCG@10 16.59 alone, 36.98 at 0.2, against 35.91 for the first stage
(``examples/results/rerank-panel/compare.md``)."""


def modes_of(channels: tuple[str, ...]) -> tuple[str, ...]:
    """The search modes an index of these ``channels`` can answer, its default first (``dense``, or
    ``multivector`` on a multi-vector index)."""
    return tuple(mode for mode, needs in MODES.items() if set(needs) <= set(channels))


def channels_of(mode: str, available: tuple[str, ...] | None = None, where: str = "this index") -> tuple[str, ...]:
    """The channels of ``mode``; with ``available``, an :class:`InputError` naming what is missing."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    channels = MODES[mode]
    if available is not None:
        missing = [c for c in channels if c not in available]
        if missing:
            how = {
                "sparse": "build it with --sparse",
                "bm25": "build it without --no-bm25",
                "multivector": "build it with --multivector token or --multivector chunk",
            }
            raise InputError(
                f"{where} has no {missing[0]} part for mode {mode!r} ({how.get(missing[0], 'rebuild it')})"
            )
    return channels


def check_fusion(fusion: str, weights: Mapping[str, float] | None, channels: tuple[str, ...]) -> dict[str, float]:
    """Validated per-channel weights: given ones, or equal (1 each under RRF; 1/n each, summing to 1, when
    weighted, so dense + sparse stays the half-and-half mix it always was)."""
    if fusion not in FUSIONS:
        raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
    if weights is None:
        return {c: 1.0 if fusion == "rrf" else 1.0 / len(channels) for c in channels}
    unknown = [name for name in weights if name not in channels]
    if unknown:
        raise InputError(f"weights name {unknown[0]!r}, which is not a channel of this mode ({', '.join(channels)})")
    chosen = {}
    for channel in channels:
        value = weights.get(channel, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
            raise InputError(f"weight of {channel!r} must be a non-negative number, not {value!r}")
        chosen[channel] = float(value)
    if not any(chosen.values()):
        raise InputError("weights are all zero: at least one channel must count")
    return chosen


def fuse(
    channels: Mapping[str, np.ndarray], fusion: str = DEFAULT_FUSION, weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """(queries × candidates) fused scores of each channel's (queries × candidates) scores (NaN: not retrieved).

    ``rrf``: Σ weight / (RRF_K + rank), rank 1 = a channel's best, ties broken by candidate order.
    ``weighted``: Σ weight · min-max normalised score, normalised over what the channel retrieved for that query.
    A candidate a channel did not retrieve adds nothing from it.
    """
    names = tuple(channels)
    chosen = check_fusion(fusion, weights, names)
    total = None
    for name in names:
        part = _rrf(channels[name]) if fusion == "rrf" else _minmax(channels[name])
        total = chosen[name] * part if total is None else total + chosen[name] * part
    return total


def _rrf(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    missing = np.isnan(scores)
    order = np.argsort(np.where(missing, np.inf, -scores), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :].repeat(len(scores), 0), axis=1)
    return np.where(missing, 0.0, 1.0 / (RRF_K + ranks))


def _minmax(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, np.float64)
    missing = np.isnan(scores)
    with np.errstate(all="ignore"):
        low = np.nanmin(np.where(missing, np.inf, scores), axis=1, keepdims=True)
        high = np.nanmax(np.where(missing, -np.inf, scores), axis=1, keepdims=True)
        span = high - low
        normalised = np.where(span > 0, (scores - low) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(missing, 0.0, normalised)


def check_rerank_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise InputError(f"rerank weight must be a number from 0 to 1 (the reranker's share), not {weight!r}")
    return float(weight)


def blend_rerank(first_stage: Sequence[float], reranker: Sequence[float], weight: float = RERANK_WEIGHT) -> np.ndarray:
    """Final scores of a reranked head: ``(1 − weight)`` · the first stage's scores + ``weight`` · the
    reranker's, each min-max normalised over the head (the ``weighted`` fusion of two channels). At weight 1 the
    reranker's own scores, unchanged."""
    weight = check_rerank_weight(weight)
    judged = np.asarray(reranker, np.float64)
    if weight == 1.0:
        return judged
    channels = {"first stage": np.asarray(first_stage, np.float64)[None, :], "reranker": judged[None, :]}
    return fuse(channels, "weighted", {"first stage": 1.0 - weight, "reranker": weight})[0]
