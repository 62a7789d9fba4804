"""BM25 over texts with bm25s: one tokenization for the evaluation baseline, hard-negative mining and an index's
``bm25`` channel, so the scores each reports are the same.

Lucene's BM25 (k1 1.5, b 0.75), lower-cased words of two or more letters, English stop words dropped and, where
PyStemmer is installed (the ``eval`` and ``serve`` extras bring it), Snowball English stemming, as the BM25 rows of
BEIR and MTEB use. An index records whether its vocabulary was stemmed and queries follow it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llembed.errors import InputError

PARAMETERS = {"k1": 1.5, "b": 0.75, "method": "lucene"}
STOPWORDS = "en"
SETTINGS_FILE = "llembed-bm25.json"


def stemming_available() -> bool:
    return importlib.util.find_spec("Stemmer") is not None


class BM25:
    """A bm25s index over ``len(self)`` texts; :meth:`scores` and :meth:`top` rank them for queries."""

    def __init__(self, retriever, stem: bool, size: int) -> None:
        self.retriever = retriever
        self.stem = stem
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str], stem: bool | None = None) -> BM25:
        """Index ``texts`` (stemmed when PyStemmer is installed, unless ``stem`` says otherwise)."""
        import bm25s

        stem = stemming_available() if stem is None else stem
        texts = list(texts)
        if not texts:
            raise InputError("BM25: the corpus is empty")
        tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, stemmer=_stemmer(stem), show_progress=False)
        if not tokens.vocab:
            raise InputError("BM25: no text of the corpus has a word to index (only stop words or punctuation)")
        retriever = bm25s.BM25(**PARAMETERS)
        retriever.index(tokens, show_progress=False)
        return cls(retriever, stem, len(texts))

    def __len__(self) -> int:
        return self.size

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        """(queries × texts) BM25 scores; a query with no indexed word scores 0 everywhere."""
        import bm25s

        words = bm25s.tokenize(
            list(queries), stopwords=STOPWORDS, stemmer=_stemmer(self.stem), show_progress=False, return_ids=False
        )
        vocabulary = self.retriever.vocab_dict
        found = np.zeros((len(words), self.size), np.float32)
        for row, query in enumerate(words):
            known = [w for w in query if w in vocabulary]
            if known:  # bm25s refuses an empty query; one with no indexed word matches nothing
                found[row] = self.retriever.get_scores(known)
        return found

    def top(self, queries: Sequence[str], depth: int) -> list[dict[int, float]]:
        """Per query, ``{row: score}`` of its best ``depth`` texts; texts sharing no word with it are left out."""
        found = []
        for row_scores in self.scores(queries):
            best = np.argsort(-row_scores, kind="stable")[:depth]
            found.append({int(r): float(row_scores[r]) for r in best if row_scores[r] > 0})
        return found

    def save(self, folder: str | Path) -> None:
        """bm25s's own files in ``folder`` (which must exist), plus how its texts were tokenized."""
        folder = Path(folder)
        self.retriever.save(str(folder), show_progress=False)
        settings = {"stem": self.stem, "stopwords": STOPWORDS, "size": self.size, **PARAMETERS}
        (folder / SETTINGS_FILE).write_text(json.dumps(settings) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> BM25:
        import bm25s

        folder = Path(folder)
        settings_file = folder / SETTINGS_FILE
        if not settings_file.is_file():
            raise InputError(f"{folder} is not a BM25 index written by llembed (no {SETTINGS_FILE})")
        settings = json.loads(settings_file.read_text(encoding="utf-8"))
        if settings["stem"] and not stemming_available():
            raise InputError(
                f"{folder} was built with stemming, which needs PyStemmer, not installed here: "
                "pip install 'llembed[serve]'"
            )
        retriever = bm25s.BM25.load(str(folder), show_progress=False)
        return cls(retriever, settings["stem"], settings["size"])


def bm25_scores(queries: Sequence[str], documents: Sequence[str], stem: bool | None = None) -> np.ndarray:
    """(queries × documents) BM25 scores of ``queries`` over ``documents`` indexed on the spot."""
    return BM25.build(documents, stem).scores(queries)


def _stemmer(stem: bool):
    if not stem:
        return None
    import Stemmer

    return Stemmer.Stemmer("english")  # bm25s stems each distinct word once (stemWords)
