"""Static models: one vector per vocabulary token, a text's vector the mean of its tokens' (model2vec-style).

A static model is a sentence-transformers folder (``StaticEmbedding`` then ``Normalize``), written by
:func:`llembed.static_distill.distill_static`. ``SentenceTransformer(folder)`` loads it, and so does
``Embedder.from_pretrained(folder)``: :func:`llembed.backbone.load_backbone` gives a :class:`StaticBackbone`,
whose only layer (0) is the token-vector lookup, and the encoder defaults (no prompt, mean pooling) make the
Embedder's vector exactly sentence-transformers'.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llembed.errors import RecipeError
from llembed.tokenization import TokenBatch

META_FILE = "llembed_static.json"
"""What a distilled static model was made from (recipe, dimensions, weighting), beside its modules."""


def is_static_folder(path: str | Path) -> bool:
    """A sentence-transformers folder whose first module is a ``StaticEmbedding``."""
    modules_file = Path(path) / "modules.json"
    if not modules_file.is_file():
        return False
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return bool(modules) and str(modules[0].get("type", "")).endswith("StaticEmbedding")


def bag_offsets(lengths: Sequence[int]) -> torch.Tensor:
    """Where each text starts in its texts' concatenated token ids: ``embedding_bag``'s offsets."""
    return torch.tensor([0, *np.cumsum(lengths[:-1]).tolist()], dtype=torch.long)


@dataclass
class StaticBackbone:
    """A token-vector table in the place of a transformer: hidden state 0 of a text is its tokens' vectors.

    It offers what the forward loop reads of a :class:`llembed.backbone.Backbone`; mean pooling over layer 0 is
    then exactly sentence-transformers' ``StaticEmbedding`` (an ``EmbeddingBag`` mean)."""

    vectors: torch.Tensor
    tokenizer: Any
    name: str = "static"
    is_decoder: bool = False
    num_layers: int = 0
    compiled: None = None
    quantization: None = None
    has_sliding_window: bool = False
    max_positions: int = 1 << 20
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def load(cls, folder: str | Path, name: str | None = None) -> StaticBackbone:
        from safetensors.torch import load_file
        from transformers import PreTrainedTokenizerFast

        folder = Path(folder)
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        module_dir = folder / modules[0].get("path", "")
        weights = load_file(module_dir / "model.safetensors")
        if "embedding.weight" not in weights:
            raise RecipeError(f"{module_dir}/model.safetensors has no embedding.weight: not a StaticEmbedding")
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(module_dir / "tokenizer.json"))
        if tokenizer.pad_token_id is None:  # padded positions are masked out: any id will do
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)
        return cls(weights["embedding.weight"].float(), tokenizer, name or folder.name)

    @property
    def hidden_size(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    @property
    def dtype_name(self) -> str:
        return "static"

    def hidden_states(
        self,
        batch: TokenBatch,
        layer_ids: Sequence[int],
        bidirectional: bool = False,
        block_hooks: Sequence = (),
        prefix: Any = None,
        grad: bool = False,
    ) -> dict[int, torch.Tensor]:
        """Layer 0, the only one: each token's vector (padding's too: pooling masks it out)."""
        if list(layer_ids) != [0]:
            raise RecipeError(f"a static model has one layer (0, its token vectors), not {list(layer_ids)}")
        if block_hooks or prefix is not None or bidirectional:
            raise RecipeError("a static model has no attention: no hooks, prefix cache or bidirectional attention")
        return {0: self.vectors[batch.input_ids.to(self.vectors.device)]}

    def plain_means(self, texts: Sequence[str]) -> tuple[torch.Tensor, int]:
        """Each text's mean token vector, tokenized as sentence-transformers' ``StaticEmbedding`` does (no special
        tokens; an empty text gives zeros), in one ``embedding_bag``; and the number of tokens read. What a
        plain recipe (no prompt, mean pooling) gives, without padded batches."""
        encodings = self.tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False)
        lengths = [len(encoding.ids) for encoding in encodings]
        flat = torch.tensor([token for encoding in encodings for token in encoding.ids], dtype=torch.long)
        offsets = bag_offsets(lengths)
        return torch.nn.functional.embedding_bag(flat, self.vectors, offsets, mode="mean"), sum(lengths)

    def lm_head(self):
        raise RecipeError("a static model has no LM head: it gives no sparse vectors")

    def final_norm(self):
        return self.lm_head()

    def compile(self) -> None:
        raise RecipeError("a static model is a table lookup: there is nothing to compile")
