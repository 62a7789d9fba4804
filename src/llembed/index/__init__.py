"""Vector search over a corpus: a faiss index (exact or HNSW) plus an optional sparse inverted index."""

from llembed.extras import require

require("index", "vector search")

from llembed.index.build import build_index  # noqa: E402
from llembed.index.rerank import rerank_hits  # noqa: E402
from llembed.index.search import Hit, VectorIndex  # noqa: E402

__all__ = ["Hit", "VectorIndex", "build_index", "rerank_hits"]
