"""Platt scaling of reranker scores: the fit against the likelihood equations, a known logistic model, and bad
input."""

from __future__ import annotations

import numpy as np
import pytest

from llembed.errors import InputError
from llembed.rerank_calibration import calibrated, fit_platt


def test_the_fit_solves_platts_likelihood_equations():
    scores = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0]
    relevant = [False, False, True, False, True, False, True, True]
    scale, bias = fit_platt(scores, relevant)
    positives, negatives = 4, 4
    target = np.where(relevant, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    p = np.asarray(calibrated(scores, (scale, bias)))
    # at the maximum the gradient of the log-likelihood is zero: sum(p - t) = 0 and sum((p - t) · s) = 0
    assert abs(float((p - target).sum())) < 1e-8
    assert abs(float(((p - target) * np.asarray(scores)).sum())) < 1e-8
    assert scale > 0


def test_the_fit_recovers_a_known_logistic_model():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 20_000)
    relevant = rng.random(20_000) < 1 / (1 + np.exp(-(0.4 * scores - 1.5)))
    scale, bias = fit_platt(scores, relevant)
    assert scale == pytest.approx(0.4, abs=0.02) and bias == pytest.approx(-1.5, abs=0.05)


def test_without_calibration_a_probability_is_the_sigmoid_of_the_score():
    assert calibrated([0.0, 2.0], None) == pytest.approx([0.5, 1 / (1 + np.exp(-2.0))], abs=1e-12)


@pytest.mark.parametrize(
    ("scores", "relevant", "message"),
    [
        ([1.0, 2.0], [True, True], "relevant and irrelevant pairs both"),
        ([1.0, 2.0], [True], "one label per score"),
        ([1.0, float("inf")], [True, False], "finite"),
        ([3.0, 2.0, 1.0, 0.0], [False, False, True, True], "do not rank relevant pairs higher"),
    ],
)
def test_bad_calibration_data_is_one_clear_error(scores, relevant, message):
    with pytest.raises(InputError, match=message):
        fit_platt(scores, relevant)
