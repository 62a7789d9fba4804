"""The demo indexes behind ``llembed serve --demo``: real SciFact abstracts (the quick suite's subsample, bundled),
indexed dense + sparse + BM25 once per recipe, cached by recipe, built atomically and resumably like any index, so
search, hybrid mode and the playground work on a fresh machine without a corpus of one's own.

Two recipes are indexed on the one loaded model: the served recipe (``demo``) and a contrasting one (prompt and
pooling swapped, see :func:`contrast_fields`), so the playground's side-by-side recipe comparison has something
to compare out of the box."""

from __future__ import annotations

from pathlib import Path

from llembed.embedder import Embedder
from llembed.evaluation.bundled import load_bundled, subsample_retrieval
from llembed.index.build import Corpus, add_bm25, build_index, recipe_hash
from llembed.model_sources import cache_root

DEMO_QUERIES = 40  # the quick suite's SciFact subsample: these queries' judged abstracts + 100 random others
DEMO_EXTRA_DOCUMENTS = 100


def demo_corpus() -> Corpus:
    scifact = subsample_retrieval(load_bundled("scifact"), DEMO_QUERIES, DEMO_EXTRA_DOCUMENTS)
    return Corpus(ids=list(scifact.corpus), texts=list(scifact.corpus.values()))


def demo_queries() -> list[str]:
    """The SciFact claims whose abstracts the demo index holds (good queries to try)."""
    return list(subsample_retrieval(load_bundled("scifact"), DEMO_QUERIES, DEMO_EXTRA_DOCUMENTS).queries.values())


def contrast_fields(embedder: Embedder) -> dict[str, str]:
    """The recipe change the second demo index shows: a causal LM's PromptEOL + last token against the plain text
    + mean pooling (the survey's two main training-free families); an encoder's mean against its first token."""
    recipe = embedder.recipe
    if not embedder.backbone.is_decoder:
        return {"pooling": "first" if recipe.pooling == "mean" else "mean"}
    if recipe.pooling == "mean" and recipe.prompt in (None, "none"):
        return {"prompt": "prompteol", "pooling": "last"}
    return {"prompt": "none", "pooling": "mean"}


def demo_indexes(
    embedder: Embedder, root: str | Path | None = None, show_progress_bar: bool = True
) -> dict[str, tuple[Embedder, Path]]:
    """Name → (embedder, index folder) of both demo indexes: ``demo`` (the served recipe) and ``demo-<pooling>``
    (the contrasting recipe on the same loaded backbone: nothing reloads)."""
    fields = contrast_fields(embedder)
    contrast = embedder.replace(**fields)
    return {
        "demo": (embedder, demo_index(embedder, root, show_progress_bar)),
        f"demo-{fields['pooling']}": (contrast, demo_index(contrast, root, show_progress_bar)),
    }


def demo_index(embedder: Embedder, root: str | Path | None = None, show_progress_bar: bool = True) -> Path:
    """The demo index folder for ``embedder``'s recipe, built on first use (BM25, and sparse too for a causal LM)."""
    out = Path(root or cache_root() / "demo") / f"scifact-{recipe_hash(embedder)}"
    if (out / "manifest.json").is_file():
        return add_bm25(out)  # a demo index cached before the BM25 channel gets it now
    sparse = embedder.backbone.is_decoder
    return build_index(embedder, demo_corpus(), out, sparse=sparse, show_progress_bar=show_progress_bar)
