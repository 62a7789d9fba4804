"""BM25 against Lucene's formula computed by hand, stemming, save/load, and bad corpora."""

import math

import numpy as np
import pytest

from llembed.bm25 import BM25, bm25_scores, stemming_available
from llembed.errors import InputError

DOCS = ["the cat sat on the mat", "cat cat dog", "a bird sang"]


def _lucene(query_words, docs_words, k1=1.5, b=0.75):
    n = len(docs_words)
    average = sum(map(len, docs_words)) / n
    scores = []
    for words in docs_words:
        total = 0.0
        for term in query_words:
            df = sum(term in d for d in docs_words)
            if df == 0:
                continue
            tf = words.count(term)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            # Lucene ≥ 8 drops the classic (k1 + 1) numerator factor, which never changes a ranking
            total += idf * tf / (tf + k1 * (1 - b + b * len(words) / average))
        scores.append(total)
    return scores


def test_scores_are_lucene_bm25_over_words_without_stop_words():
    # tokens after lower-casing, ≥ 2 letters, English stop words out: "the", "on", "a" go
    docs_words = [["cat", "sat", "mat"], ["cat", "cat", "dog"], ["bird", "sang"]]
    found = bm25_scores(["The cat and the dog", "unseen words only"], DOCS, stem=False)
    assert found[0] == pytest.approx(_lucene(["cat", "dog"], docs_words), rel=1e-5)
    assert found[1].tolist() == [0.0, 0.0, 0.0]  # no indexed word: nothing matches, no error


@pytest.mark.skipif(not stemming_available(), reason="PyStemmer not installed")
def test_stemming_matches_inflections():
    plain = bm25_scores(["cats sitting"], ["a cat sits here", "dogs run"], stem=False)
    stemmed = bm25_scores(["cats sitting"], ["a cat sits here", "dogs run"], stem=True)
    assert plain[0].tolist() == [0.0, 0.0] and stemmed[0][0] > 0 == stemmed[0][1]


def test_top_leaves_out_what_shares_no_word_and_survives_save_and_load(tmp_path):
    index = BM25.build(DOCS)
    top = index.top(["cat", "bird"], depth=5)
    assert list(top[0]) == [1, 0] and list(top[1]) == [2]  # dog-and-cat twice beats once; the bird is alone
    index.save(tmp_path)
    loaded = BM25.load(tmp_path)
    assert len(loaded) == 3 and loaded.stem == index.stem
    np.testing.assert_array_equal(loaded.scores(["cat dog bird"]), index.scores(["cat dog bird"]))


def test_bad_corpora_are_named(tmp_path):
    with pytest.raises(InputError, match="the corpus is empty"):
        BM25.build([])
    with pytest.raises(InputError, match="no text of the corpus has a word to index"):
        BM25.build(["the a an", "!!"])
    with pytest.raises(InputError, match="not a BM25 index written by llembed"):
        BM25.load(tmp_path)
