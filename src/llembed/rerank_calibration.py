"""Calibrated reranker scores: Platt scaling of ``logit(yes) - logit(no)``.

A reranker's raw score orders one query's documents, but ``sigmoid(score)`` is no probability: a model answers
"yes" with 0.85 to everything, or to nothing, depending on its prompt. Platt (1999) fits ``p = sigmoid(a·s + b)``
to judged (score, relevant) pairs held aside from training, by maximum likelihood; with ``a > 0`` the order within
a query is kept and the probability means the same for every query. The fit is Newton's method on the two
parameters (a convex problem; steps halved until the likelihood rises), with Platt's smoothed targets so
separable data keeps a finite slope.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llembed.errors import InputError


def fit_platt(scores: Sequence[float], relevant: Sequence[bool], iterations: int = 100) -> tuple[float, float]:
    """``(scale, bias)`` maximising the likelihood of ``relevant`` under ``sigmoid(scale · score + bias)``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(relevant, dtype=bool)
    if s.ndim != 1 or len(s) != len(y):
        raise InputError(f"calibration needs one label per score, not {len(y)} labels for {len(s)} scores")
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        raise InputError("calibration needs relevant and irrelevant pairs both (one kind alone fixes no scale)")
    if not np.isfinite(s).all():
        raise InputError("calibration scores must be finite numbers")
    # Platt's targets: (N+ + 1) / (N+ + 2) and 1 / (N- + 2) instead of 1 and 0
    target = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = np.stack([s, np.ones_like(s)], axis=1)

    def loss(params: np.ndarray) -> float:  # cross-entropy against the targets, computed without overflow
        z = features @ params
        return float((np.logaddexp(0, z) - target * z).sum())

    params = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = 0.5 * (1 + np.tanh(0.5 * (features @ params)))  # the sigmoid, overflow-free
        gradient = features.T @ (p - target)
        hessian = features.T @ (features * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        current, size = loss(params), 1.0
        while size > 1e-8 and loss(params - size * step) > current:  # Newton overshoots from a far start: damp it
            size /= 2
        params = params - size * step
        if np.abs(size * step).max() < 1e-10:
            break
    scale, bias = float(params[0]), float(params[1])
    if scale <= 0:
        raise InputError(
            f"the scores do not rank relevant pairs higher (fitted scale {scale:.3g}): nothing to calibrate"
        )
    return scale, bias


def calibrated(scores: Sequence[float], calibration: Sequence[float] | None) -> list[float]:
    """Probabilities of relevance: ``sigmoid(scale · score + bias)``, or ``sigmoid(score)`` without calibration."""
    scale, bias = calibration if calibration is not None else (1.0, 0.0)
    z = scale * np.asarray(scores, dtype=np.float64) + bias
    return (0.5 * (1 + np.tanh(0.5 * z))).tolist()
