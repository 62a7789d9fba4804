import numpy as np
import pytest

from llembed import Embedder, Recipe
from llembed.batching import token_budget_batches

from .conftest import SENTENCES


def test_token_budget_batches_by_hand():
    lengths = [5, 20, 7, 20, 3, 9]
    # longest first: 1, 3 (20), 5 (9), 2 (7), 0 (5), 4 (3)
    assert token_budget_batches(lengths, max_rows=10) == [[1, 3, 5, 2, 0, 4]]
    assert token_budget_batches(lengths, max_rows=2) == [[1, 3], [5, 2], [0, 4]]
    # budget 40 padded tokens: [20, 20] = 40; [9, 7, 5, 3] = 4 × 9 = 36
    assert token_budget_batches(lengths, max_rows=10, max_tokens=40) == [[1, 3], [5, 2, 0, 4]]
    # a text longer than the budget still gets its own batch
    assert token_budget_batches([50, 2], max_rows=4, max_tokens=10) == [[0], [1]]
    batches = token_budget_batches(list(range(1, 200)), max_rows=64, max_tokens=512)
    assert sorted(i for b in batches for i in b) == list(range(199))
    assert all(len(b) * max(range(1, 200)[i] for i in b) <= 512 or len(b) == 1 for b in batches)
    with pytest.raises(ValueError):
        token_budget_batches([1], max_rows=0)


def test_token_budget_does_not_change_vectors(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(prompt="prompteol", pooling="mean", dtype="float32"))
    wide = embedder.encode(SENTENCES, batch_size=64)
    embedder.max_batch_tokens = 40
    narrow = embedder.encode(SENTENCES, batch_size=64)
    embedder.max_batch_tokens = 4096
    assert np.allclose(wide, narrow, atol=1e-5)


def test_streaming_yields_chunks_in_order_equal_to_encode(tiny_backbones):
    embedder = Embedder(tiny_backbones["qwen2"], Recipe(prompt="none", pooling="last", dtype="float32"))
    texts = (f"{sentence} ({i})" for i in range(3) for sentence in SENTENCES)  # a generator, consumed lazily
    chunks = list(embedder.encode_stream(texts, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 4, 3]
    expected = embedder.encode([f"{s} ({i})" for i in range(3) for s in SENTENCES])
    assert np.allclose(np.concatenate(chunks), expected, atol=1e-5)
    with pytest.raises(Exception, match="single string"):
        list(embedder.encode_stream("one text"))
