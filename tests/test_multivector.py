"""Multi-vector texts and MaxSim against hand computations; token vectors against the tiny Llama's own states."""

import numpy as np
import pytest
import torch

from llembed import Embedder, Recipe
from llembed.errors import InputError
from llembed.multivector import MultiVectors, embed_multivector, maxsim, pool_tokens

from .conftest import SENTENCES
from .test_chunked import final_states, words


@pytest.fixture(scope="module")
def hf_llama(tiny_model_dirs):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model_dirs["llama"], dtype=torch.float32).eval()


def unit(*rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_maxsim_by_hand():
    queries = MultiVectors.of([unit([1, 0], [0, 1]), unit([1, 1])])
    documents = MultiVectors.of([unit([1, 0]), unit([0, 1], [1, 1], [-1, 0])])
    s = np.sqrt(0.5)
    # query 0: vector (1,0) best on doc 0 is 1, on doc 1 is s; vector (0,1): 0 on doc 0, 1 on doc 1
    # query 1 (unit (1,1)): doc 0 s; doc 1 max(s, 1, -s) = 1
    expected = np.array([[(1 + 0) / 2, (s + 1) / 2], [s, 1.0]])
    np.testing.assert_allclose(maxsim(queries, documents), expected, atol=1e-6)
    # top 2: each query vector's two best in a document (doc 0 has one vector: its one)
    top2 = np.array([[(1 + 0) / 2, ((s + 0) / 2 + (1 + s) / 2) / 2], [s, (1 + s) / 2]])
    np.testing.assert_allclose(maxsim(queries, documents, top=2), top2, atol=1e-6)
    np.testing.assert_allclose(documents.means()[1], (unit([0, 1])[0] + unit([1, 1])[0] + [-1, 0]) / 3, atol=1e-6)


def test_maxsim_in_small_blocks_equals_one_block(monkeypatch):
    rng = np.random.default_rng(0)
    queries = MultiVectors.of([rng.normal(size=(n, 8)) for n in (1, 3, 5)])
    documents = MultiVectors.of([rng.normal(size=(n, 8)) for n in (4, 1, 7, 2, 9, 3)])
    whole = maxsim(queries, documents)
    brute = np.array([[(queries.text(q) @ documents.text(d).T).max(axis=1).mean() for d in range(6)] for q in range(3)])
    np.testing.assert_allclose(whole, brute, atol=1e-6)
    monkeypatch.setattr("llembed.multivector.BLOCK_ROWS", 10)  # blocks of a document or two
    np.testing.assert_allclose(maxsim(queries, documents), whole, atol=1e-6)
    top3 = np.array(
        [[np.sort(queries.text(q) @ documents.text(d).T, axis=1)[:, ::-1][:, :3].mean(axis=1).mean() for d in range(6)]
         for q in range(3)]
    )  # fmt: skip
    np.testing.assert_allclose(maxsim(queries, documents, top=3), top3, atol=1e-6)


def test_bad_multivector_input_is_named():
    with pytest.raises(InputError, match="text 1 has no vectors"):
        MultiVectors.of([np.ones((2, 3)), np.ones((0, 3))])
    with pytest.raises(InputError, match="different dimensions"):
        MultiVectors.of([np.ones((2, 3)), np.ones((1, 4))])
    with pytest.raises(InputError, match="query vectors have 3 dimensions, document vectors 4"):
        maxsim(MultiVectors.of([np.ones((1, 3))]), MultiVectors.of([np.ones((1, 4))]))
    with pytest.raises(InputError, match="top must be at least 1"):
        maxsim(MultiVectors.of([np.ones((1, 3))]), MultiVectors.of([np.ones((1, 3))]), top=0)


def test_token_pooling_merges_near_duplicates():
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    vectors = np.array([a, [0.99, 0.01, 0.0], b, [0.01, 0.99, 0.0]], np.float32)
    pooled, groups = pool_tokens(vectors, 2)
    np.testing.assert_allclose(pooled, [vectors[:2].mean(0), vectors[2:].mean(0)], atol=1e-6)  # in text order
    assert [g.tolist() for g in groups] == [[0, 1], [2, 3]]
    kept, groups = pool_tokens(vectors, 1)
    np.testing.assert_array_equal(kept, vectors)
    assert [g.tolist() for g in groups] == [[0], [1], [2], [3]]
    assert len(pool_tokens(vectors[:1], 4)[0]) == 1
    with pytest.raises(InputError, match="pool factor"):
        pool_tokens(vectors, 0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_token_vectors_are_the_models_states_of_the_text_tokens(tiny_backbones, hf_llama, decoder_tokenizer, side):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32", prompt="none", padding_side=side))
    texts = [words(5), words(11)]
    found = embed_multivector(embedder, texts, unit="token", batch_size=2)
    assert list(found.counts) == [5, 11]
    for index, text in enumerate(texts):
        ids = decoder_tokenizer(text, add_special_tokens=False)["input_ids"]
        states = final_states(hf_llama, ids)
        by_hand = torch.nn.functional.normalize(states, dim=1).numpy()
        np.testing.assert_allclose(found.text(index), by_hand, atol=1e-5)
        offsets = decoder_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert found.text_spans(index).tolist() == [list(pair) for pair in offsets]
    singles = [embed_multivector(embedder, [text], unit="token") for text in texts]
    for index, single in enumerate(singles):
        np.testing.assert_allclose(found.text(index), single.vectors, atol=1e-5)
    pooled = embed_multivector(embedder, texts, unit="token", pool_factor=2)
    assert list(pooled.counts) == [2, 5]
    covered = pooled.text_spans(1)
    assert covered[:, 0].min() == 0 and covered[:, 1].max() == len(texts[1])  # the groups cover the text


def test_a_short_text_as_one_chunk_is_its_plain_vector(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32", prompt="prompteol", pooling="mean"))
    found = embed_multivector(embedder, SENTENCES, unit="chunk")
    assert list(found.counts) == [1] * len(SENTENCES)
    np.testing.assert_allclose(found.vectors, embedder.encode(SENTENCES, normalize=True), atol=1e-6)
    with pytest.raises(InputError, match="unit must be one of chunk, token"):
        embed_multivector(embedder, SENTENCES, unit="sentence")


def test_token_vectors_under_a_prompt_are_the_text_tokens_states_in_context(tiny_backbones, hf_llama):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32", prompt="prompteol", pooling="last"))
    text = words(9)
    from llembed.prompts import templates_for

    (template,) = templates_for(embedder.strategy, "document", None)
    (item,) = embedder.prompt_tokenizer.tokenize_texts([text], template)
    states = final_states(hf_llama, item.ids)[torch.tensor(item.text_mask)]  # the text's tokens, prompt before
    found = embed_multivector(embedder, [text], unit="token")
    assert len(found.vectors) == sum(item.text_mask) == 9
    np.testing.assert_allclose(found.vectors, torch.nn.functional.normalize(states, dim=1).numpy(), atol=1e-5)
