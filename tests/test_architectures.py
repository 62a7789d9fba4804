"""Every decoder family the brief names works without per-architecture code: batches equal singles under both
padding sides and attention modes, and bidirectional attention really lets early tokens see later ones."""

import numpy as np
import pytest
import torch

from llembed import Embedder, Recipe
from llembed.backbone import Backbone

from .conftest import SENTENCES


def _config(kind: str, vocab: int):
    from transformers import Gemma3TextConfig, GPTNeoXConfig, MistralConfig, OPTConfig, Qwen3Config

    common = dict(vocab_size=vocab, hidden_size=64, num_hidden_layers=4, num_attention_heads=4)
    common["max_position_embeddings"] = 512
    if kind == "mistral":
        return MistralConfig(**common, intermediate_size=128, num_key_value_heads=2, sliding_window=None)
    if kind == "qwen3":
        return Qwen3Config(**common, intermediate_size=128, num_key_value_heads=2, head_dim=16)
    if kind == "opt":
        return OPTConfig(**common, ffn_dim=128, word_embed_proj_dim=64)
    if kind == "gpt_neox":
        return GPTNeoXConfig(**common, intermediate_size=128)
    if kind == "gemma3":  # sliding-window layers mixed with full ones
        return Gemma3TextConfig(**common, intermediate_size=128, num_key_value_heads=2, head_dim=16, sliding_window=4)
    raise ValueError(kind)


@pytest.fixture(scope="module", params=["mistral", "qwen3", "opt", "gpt_neox", "gemma3"])
def backbone(request, decoder_tokenizer):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(request.param, len(decoder_tokenizer)))
    return Backbone.wrap(model, decoder_tokenizer, name=request.param)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_equals_singles(backbone, side, bidirectional):
    for pooling in ("last", "mean"):
        recipe = Recipe(prompt="prompteol", pooling=pooling, padding_side=side, bidirectional=bidirectional)
        embedder = Embedder(backbone, recipe.replace(dtype="float32"))
        batched = embedder.encode(SENTENCES)
        singles = np.stack([embedder.encode(text) for text in SENTENCES])
        assert (batched * singles).sum(axis=1).min() >= 0.9999, (backbone.name, side, bidirectional, pooling)


def test_bidirectional_attention_only_when_on(backbone):
    pair = ["the cat sat on the mat", "the cat sat on the rug"]
    causal = Embedder(backbone, Recipe(prompt="none", pooling="first")).encode(pair)
    both_ways = Embedder(backbone, Recipe(prompt="none", pooling="first", bidirectional=True)).encode(pair)
    assert np.allclose(causal[0], causal[1], atol=1e-6)
    assert not np.allclose(both_ways[0], both_ways[1], atol=1e-4)
