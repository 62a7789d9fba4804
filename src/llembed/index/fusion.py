"""Hybrid fusion of dense and sparse hits: each list's scores min-max normalised over the union of
candidates, then mixed (the same rule as the evaluation's hybrid retrieval, so its measurements carry over)."""

from __future__ import annotations

HYBRID_WEIGHT = 0.5


def fuse(dense: dict[int, float], sparse: dict[int, float], weight: float = HYBRID_WEIGHT) -> dict[int, float]:
    """``{row: score}`` of both retrievers → ``{row: weight·dense' + (1−weight)·sparse'}``.

    A row missing from one list gets that list's lowest normalised score (0): it was not retrieved there.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"hybrid weight must be in [0, 1], not {weight}")
    d, s = _minmax(dense), _minmax(sparse)
    return {row: weight * d.get(row, 0.0) + (1 - weight) * s.get(row, 0.0) for row in set(d) | set(s)}


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {row: (value - low) / span if span > 0 else 1.0 for row, value in scores.items()}
