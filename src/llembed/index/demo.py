"""The demo index behind ``llembed serve --demo``: real SciFact abstracts (the quick suite's subsample, bundled),
indexed dense + sparse for the served recipe once, cached by recipe, built atomically and resumably like any
index, so search, hybrid mode and the playground work on a fresh machine without a corpus of one's own."""

from __future__ import annotations

from pathlib import Path

from llembed.embedder import Embedder
from llembed.evaluation.bundled import load_bundled, subsample_retrieval
from llembed.index.build import Corpus, build_index, recipe_hash
from llembed.model_sources import cache_root

DEMO_QUERIES = 40  # the quick suite's SciFact subsample: these queries' judged abstracts + 100 random others
DEMO_EXTRA_DOCUMENTS = 100


def demo_corpus() -> Corpus:
    scifact = subsample_retrieval(load_bundled("scifact"), DEMO_QUERIES, DEMO_EXTRA_DOCUMENTS)
    return Corpus(ids=list(scifact.corpus), texts=list(scifact.corpus.values()))


def demo_queries() -> list[str]:
    """The SciFact claims whose abstracts the demo index holds (good queries to try)."""
    return list(subsample_retrieval(load_bundled("scifact"), DEMO_QUERIES, DEMO_EXTRA_DOCUMENTS).queries.values())


def demo_index(embedder: Embedder, root: str | Path | None = None, show_progress_bar: bool = True) -> Path:
    """The demo index folder for ``embedder``'s recipe, built on first use (sparse too for a causal LM)."""
    out = Path(root or cache_root() / "demo") / f"scifact-{recipe_hash(embedder)}"
    if (out / "manifest.json").is_file():
        return out
    sparse = embedder.backbone.is_decoder
    return build_index(embedder, demo_corpus(), out, sparse=sparse, show_progress_bar=show_progress_bar)
