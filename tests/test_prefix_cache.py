"""The shared-prefix cache is an object of the backbone, emptied whenever the weights change."""

from __future__ import annotations

import numpy as np
import torch

from llembed import Embedder, Recipe
from llembed.backbone import Backbone
from llembed.model_sources import locate
from llembed.prefix_cache import PrefixCache

from .conftest import SENTENCES


def test_the_cache_recomputes_after_the_weights_version_changes():
    version, computed = [0], []

    def compute():
        computed.append(1)
        return f"state {version[0]}"

    cache = PrefixCache(lambda: version[0], capacity=2)
    assert cache.get([1, 2], [4], compute) == "state 0"
    assert cache.get([1, 2], [4], compute) == "state 0" and len(computed) == 1  # served from the cache
    version[0] = 1
    assert cache.get([1, 2], [4], compute) == "state 1" and len(computed) == 2
    cache.get([3], [4], compute)
    cache.get([5], [4], compute)
    assert len(cache) == 2  # least recently used dropped


def _fresh(tiny_model_dirs, **recipe) -> Embedder:
    """A backbone of its own: these tests change its weights."""
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    return Embedder(backbone, Recipe(prompt="icl", pooling="last", dtype="float32", **recipe))


def _uncached(embedder: Embedder, texts) -> np.ndarray:
    embedder.prefix_cache = False
    try:
        return embedder.encode(texts)
    finally:
        embedder.prefix_cache = True


def test_an_in_place_weight_update_never_serves_stale_prefix_states(tiny_model_dirs):
    embedder = _fresh(tiny_model_dirs)
    before = embedder.encode(SENTENCES)
    assert len(embedder.backbone.prefix_cache) == 1
    with torch.no_grad():  # what an optimizer step does
        for parameter in embedder.backbone.layers[0].parameters():
            parameter.mul_(1.5)
    after = embedder.encode(SENTENCES)
    assert not np.allclose(before, after, atol=1e-3)
    assert np.allclose(after, _uncached(embedder, SENTENCES), atol=1e-5)


def test_moving_the_model_to_another_dtype_drops_the_cache(tiny_model_dirs):
    embedder = _fresh(tiny_model_dirs)
    embedder.encode(SENTENCES)
    key_dtype = next(iter(embedder.backbone.prefix_cache._states.values())).kv[0][0].dtype
    assert key_dtype == torch.float32
    embedder.backbone.model.to(torch.bfloat16)
    embedder.encode(SENTENCES)
    states = list(embedder.backbone.prefix_cache._states.values())
    assert len(states) == 1 and states[0].kv[0][0].dtype == torch.bfloat16


def test_writes_behind_torchs_back_are_announced_with_weights_changed(tiny_model_dirs):
    embedder = _fresh(tiny_model_dirs)
    before = embedder.encode(SENTENCES)
    embedder.backbone.layers[0].mlp.down_proj.weight.data.mul_(2.0)  # .data writes bump no version counter
    embedder.backbone.weights_changed()
    after = embedder.encode(SENTENCES)
    assert not np.allclose(before, after, atol=1e-3)
    assert np.allclose(after, _uncached(embedder, SENTENCES), atol=1e-5)
