"""Vector search over a corpus: a faiss index (exact or HNSW) plus an optional sparse inverted index."""

from llembed.index.build import build_index
from llembed.index.search import Hit, VectorIndex

__all__ = ["Hit", "VectorIndex", "build_index"]
