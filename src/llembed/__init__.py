"""llembed: any decoder-only LLM → a text-embedding model (and a reranker), with every training-free strategy as an
option."""

from llembed.chunked import TextChunks
from llembed.embedder import Embedder, PoolSpec
from llembed.errors import InputError, LlembedError, ModelNotFoundError, RecipeError
from llembed.recipe import Recipe
from llembed.reranker import Reranker
from llembed.resolve import resolve

__all__ = [
    "Embedder",
    "InputError",
    "LlembedError",
    "ModelNotFoundError",
    "PoolSpec",
    "Recipe",
    "RecipeError",
    "Reranker",
    "TextChunks",
    "resolve",
]
__version__ = "0.1.0"
