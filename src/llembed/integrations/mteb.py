"""Use an llembed :class:`~llembed.Embedder` as an mteb model: ``mteb.evaluate(MTEBEncoder(embedder), tasks)``.

Query-side inputs get ``encode_queries`` (with the task's instruction for instruction prompts), document-side
inputs ``encode_documents``, and symmetric tasks plain ``encode``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llembed.embedder import Embedder
from llembed.output import cosine_matrix, cosine_rows


class MTEBEncoder:
    """mteb's ``EncoderProtocol`` over an Embedder."""

    def __init__(self, embedder: Embedder, instructions: dict[str, str] | None = None, batch_size: int = 32):
        self.embedder = embedder
        self.instructions = instructions or {}
        self.batch_size = batch_size

    @property
    def mteb_model_meta(self):
        from mteb.models.model_meta import ModelMeta

        recipe = self.embedder.recipe
        name = f"llembed/{recipe.model}-{recipe.prompt}-{recipe.pooling}".replace(" ", "_")
        return ModelMeta.create_empty(
            {"name": name, "revision": "local", "embed_dim": self.embedder.dimension, "framework": ["PyTorch"]}
        )

    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None, **kwargs: Any):
        texts = [text for batch in inputs for text in batch["text"]]
        side = {"query": "query", "document": "document"}.get(getattr(prompt_type, "value", prompt_type), "text")
        task = self.instructions.get(task_metadata.name, self.embedder.recipe.task)
        if side == "query":
            vectors = self.embedder.encode_queries(texts, task=task, batch_size=self.batch_size)
        else:
            vectors = self.embedder.encode(texts, side=side, batch_size=self.batch_size)
        return self.embedder.to_float(vectors)

    def similarity(self, embeddings1, embeddings2) -> np.ndarray:
        return cosine_matrix(np.atleast_2d(embeddings1), np.atleast_2d(embeddings2))

    def similarity_pairwise(self, embeddings1, embeddings2) -> np.ndarray:
        return cosine_rows(np.atleast_2d(embeddings1), np.atleast_2d(embeddings2))
