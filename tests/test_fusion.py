"""Fusion of retrieval channels against hand computations (reciprocal rank and min-max weighting)."""

import numpy as np
import pytest

from llembed.errors import InputError
from llembed.fusion import MODES, RRF_K, blend_rerank, channels_of, check_fusion, fuse

NAN = np.nan


def test_rrf_by_hand_with_a_candidate_one_channel_missed():
    dense = np.array([[0.9, 0.5, 0.1, NAN]])  # ranks 1, 2, 3, not retrieved
    bm25 = np.array([[NAN, 10.0, 2.0, 7.0]])  # not retrieved, ranks 1, 3, 2
    fused = fuse({"dense": dense, "bm25": bm25}, "rrf")
    expected = [1 / (RRF_K + 1), 1 / (RRF_K + 2) + 1 / (RRF_K + 1), 1 / (RRF_K + 3) + 1 / (RRF_K + 3), 1 / (RRF_K + 2)]
    assert fused[0] == pytest.approx(expected)
    # weights scale each channel's share: bm25 counted twice
    twice = fuse({"dense": dense, "bm25": bm25}, "rrf", {"dense": 1, "bm25": 2})
    assert twice[0][1] == pytest.approx(1 / (RRF_K + 2) + 2 / (RRF_K + 1))


def test_rrf_ties_are_broken_by_candidate_order():
    fused = fuse({"dense": np.array([[0.5, 0.5, 0.9]]), "bm25": np.array([[NAN, NAN, NAN]])}, "rrf")
    assert fused[0] == pytest.approx([1 / (RRF_K + 2), 1 / (RRF_K + 3), 1 / (RRF_K + 1)])


def test_weighted_is_min_max_over_what_each_channel_retrieved():
    dense = np.array([[0.9, 0.5, 0.1, NAN]])  # → 1, 0.5, 0, absent
    sparse = np.array([[NAN, 10.0, 2.0, 6.0]])  # → absent, 1, 0, 0.5
    fused = fuse({"dense": dense, "sparse": sparse}, "weighted")
    assert fused[0] == pytest.approx([0.5, 0.75, 0.0, 0.25])  # equal weights summing to 1
    skewed = fuse({"dense": dense, "sparse": sparse}, "weighted", {"dense": 0.8, "sparse": 0.2})
    assert skewed[0] == pytest.approx([0.8, 0.6, 0.0, 0.1])
    # a channel whose retrieved scores are all equal counts each of them fully
    flat = fuse({"dense": np.array([[3.0, 3.0]]), "sparse": np.array([[NAN, 1.0]])}, "weighted")
    assert flat[0] == pytest.approx([0.5, 1.0])


def test_modes_and_their_errors():
    assert MODES["hybrid"] == ("dense", "sparse") and MODES["dense+sparse+bm25"] == ("dense", "sparse", "bm25")
    assert channels_of("dense+bm25", ("dense", "bm25")) == ("dense", "bm25")
    with pytest.raises(InputError, match="idx has no bm25 part for mode 'dense\\+bm25' \\(build it without --no-bm25"):
        channels_of("dense+bm25", ("dense", "sparse"), "idx")
    with pytest.raises(InputError, match="has no sparse part for mode 'hybrid' \\(build it with --sparse"):
        channels_of("hybrid", ("dense", "bm25"))
    with pytest.raises(InputError, match="mode must be one of dense, sparse, bm25, hybrid"):
        channels_of("fuzzy")
    with pytest.raises(InputError, match="fusion must be one of rrf, weighted, not 'max'"):
        check_fusion("max", None, ("dense",))
    with pytest.raises(InputError, match="weights name 'sparse', which is not a channel of this mode"):
        check_fusion("rrf", {"sparse": 1}, ("dense", "bm25"))
    with pytest.raises(InputError, match="weight of 'bm25' must be a non-negative number, not -1"):
        check_fusion("rrf", {"bm25": -1}, ("dense", "bm25"))
    with pytest.raises(InputError, match="all zero"):
        check_fusion("weighted", {"dense": 0}, ("dense", "bm25"))
    assert check_fusion("weighted", {"bm25": 2}, ("dense", "bm25")) == {"dense": 0.0, "bm25": 2.0}


def test_blend_rerank_by_hand():
    first, judged = [0.9, 0.5, 0.7], [1.0, 5.0, 3.0]  # min-max: first (1, 0, 0.5), reranker (0, 1, 0.5)
    assert blend_rerank(first, judged, 0.25) == pytest.approx([0.75, 0.25, 0.5])
    assert blend_rerank(first, judged, 0.0) == pytest.approx([1.0, 0.0, 0.5])  # the first stage's order
    assert list(blend_rerank(first, judged, 1.0)) == judged  # the reranker's own scores, not normalised
    assert list(blend_rerank(first, judged)) == judged  # RERANK_WEIGHT is 1
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(InputError, match="rerank weight must be a number from 0 to 1"):
            blend_rerank(first, judged, bad)
