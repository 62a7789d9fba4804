"""Chunked pooling of long texts against hand computations on the tiny Llama's own forward pass."""

import numpy as np
import pytest
import torch

from llembed import Embedder, Recipe, RecipeError

from .conftest import SENTENCES

POOLINGS = ["last", "eos", "mean", "weighted_mean", "first", "max"]
WORDS = ["the", "cat", "sat", "on", "mat", "and", "dog", "ran", "in", "park", "while", "birds", "sang", "to", "sun"]


def make(backbones, **recipe) -> Embedder:
    recipe.setdefault("dtype", "float32")
    return Embedder(backbones["llama"], Recipe(**recipe))


@pytest.fixture(scope="module")
def hf_model(tiny_model_dirs):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model_dirs["llama"], dtype=torch.float32).eval()


def final_states(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).last_hidden_state[0]


def words(count: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(count))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("exclude_prompt", [False, True])
@pytest.mark.parametrize("chunking", ["mean", "late"])
def test_a_text_of_one_chunk_gets_its_plain_vector(tiny_backbones, pooling, side, exclude_prompt, chunking):
    chunked = make(tiny_backbones, prompt="prompteol", pooling=pooling, padding_side=side, chunking=chunking)
    chunked = chunked.replace(exclude_prompt=exclude_prompt)
    texts = [*SENTENCES, ""]
    got = chunked.pool(texts, [chunked.spec], strict=False)[chunked.spec]
    plain = chunked.replace(chunking="none")
    assert torch.equal(got, plain.pool(texts, [plain.spec], strict=False)[plain.spec])


def test_late_chunks_pool_their_tokens_from_the_whole_texts_states(tiny_backbones, hf_model, decoder_tokenizer):
    embedder = make(tiny_backbones, prompt="none", pooling="mean", chunking="late", chunk_tokens=8, chunk_overlap=2)
    text = words(17)
    ids = decoder_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 17  # one token per word: the chunks are [0, 8), [6, 14), [12, 17)
    states = final_states(hf_model, ids)
    by_hand = torch.stack([states[a:b].mean(dim=0) for a, b in [(0, 8), (6, 14), (12, 17)]])

    (chunks,) = embedder.encode_chunks([text], normalize=False)
    np.testing.assert_allclose(chunks.vectors, by_hand.numpy(), atol=1e-5)
    assert chunks.texts(text)[1] == " " + " ".join(text.split()[6:14])
    document = embedder.pool([text], [embedder.spec])[embedder.spec][0]
    torch.testing.assert_close(document, by_hand.mean(dim=0), atol=1e-5, rtol=0)


def test_late_chunking_runs_a_long_text_in_overlapping_windows(tiny_backbones, hf_model, decoder_tokenizer):
    # max_length 64 leaves a window of 60 text tokens (4 kept spare); chunks of 20 → windows [0, 60), [40, 100),
    # [80, 130) (see test_chunking): each chunk is pooled from the first window that holds it whole
    embedder = make(tiny_backbones, prompt="none", pooling="mean", chunking="late", chunk_tokens=20, max_length=64)
    text = words(130)
    ids = decoder_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 130
    windows = {(0, 60): [0, 1, 2], (40, 100): [3, 4], (80, 130): [5, 6]}
    by_hand = {}
    for (start, end), chunks in windows.items():
        states = final_states(hf_model, ids[start:end])
        for chunk in chunks:
            a, b = chunk * 20 - start, min(chunk * 20 + 20, 130) - start
            by_hand[chunk] = states[a:b].mean(dim=0)
    expected = torch.stack([by_hand[c] for c in range(7)])

    seen = []
    run = embedder.backbone.hidden_states
    embedder.backbone.hidden_states = lambda batch, *a, **k: (
        seen.append(batch.input_ids.shape[1]) or run(batch, *a, **k)
    )
    try:
        (chunks,) = embedder.encode_chunks([text], normalize=False)
    finally:
        del embedder.backbone.hidden_states
    np.testing.assert_allclose(chunks.vectors, expected.numpy(), atol=1e-5)
    assert max(seen) <= 64  # never more than one window per pass, however long the text
    assert chunks.spans[3] == (len(words(60)), len(words(80)))


def test_mean_chunking_is_the_mean_of_the_chunks_embedded_one_by_one(tiny_backbones):
    embedder = make(tiny_backbones, prompt="prompteol", pooling="last", chunking="mean", chunk_tokens=25)
    embedder = embedder.replace(chunk_overlap=5)
    text = words(70)
    (chunks,) = embedder.encode_chunks([text], normalize=False)
    pieces = chunks.texts(text)
    assert chunks.spans == [(0, len(words(25))), (len(words(20)), len(words(45)))] + [
        (len(words(40)), len(words(65))),
        (len(words(60)), len(text)),
    ]
    plain = embedder.replace(chunking="none")
    one_by_one = torch.stack([plain.pool([piece], [plain.spec])[plain.spec][0] for piece in pieces])
    np.testing.assert_allclose(chunks.vectors, one_by_one.numpy(), atol=1e-5)
    document = embedder.pool([text], [embedder.spec])[embedder.spec][0]
    torch.testing.assert_close(document, one_by_one.mean(dim=0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("chunking", ["mean", "late"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_chunked_batches_equal_singles(tiny_backbones, chunking, side, pooling):
    embedder = make(
        tiny_backbones, prompt="prompteol", pooling=pooling, padding_side=side, chunking=chunking, chunk_tokens=16
    )
    texts = [words(90), SENTENCES[0], words(33), SENTENCES[2], words(16)]
    batched = embedder.encode(texts, batch_size=4)
    singles = np.stack([embedder.encode(text) for text in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    chunks = embedder.encode_chunks(texts, batch_size=3)
    assert [len(c.spans) for c in chunks] == [6, 1, 3, 2, 1]
    for text, c in zip(texts, chunks, strict=True):
        np.testing.assert_allclose(c.vectors, embedder.encode_chunks([text])[0].vectors, atol=1e-5)


def test_a_causal_late_chunk_does_not_see_later_text_and_a_bidirectional_one_does(tiny_backbones):
    causal = make(tiny_backbones, prompt="none", pooling="mean", chunking="late", chunk_tokens=8)
    both_ways = causal.replace(bidirectional=True)
    texts = [words(24), words(16) + " birds birds birds birds birds birds birds birds"]
    for embedder, same in ((causal, True), (both_ways, False)):
        first = [c.vectors[0] for c in embedder.encode_chunks(texts)]
        assert np.allclose(first[0], first[1], atol=1e-6) == same


def test_chunks_that_do_not_fit_the_window_are_refused(tiny_backbones):
    embedder = make(tiny_backbones, prompt="prompteol", chunking="mean", chunk_tokens=500)
    with pytest.raises(RecipeError, match=r"chunk_tokens=500 is larger than the model's window: max_length=512"):
        embedder.encode([words(600)])
    defaulted = make(tiny_backbones, prompt="none", chunking="late", max_length=40, chunk_overlap=36)
    with pytest.raises(RecipeError, match="chunk_overlap=36 must be smaller than chunk_tokens=36"):
        defaulted.encode([words(100)])


def test_stats_count_chunks_and_nothing_is_truncated(tiny_backbones):
    embedder = make(tiny_backbones, prompt="prompteol", chunking="mean", chunk_tokens=30, max_length=64)
    embedder.encode([words(100), "short"])
    assert embedder.last_stats["chunks"] == 5 and embedder.last_stats["truncated"] == 0


def test_many_long_texts_are_averaged_a_group_at_a_time(tiny_backbones, monkeypatch):
    import llembed.embedder as embedder_module

    embedder = make(tiny_backbones, prompt="prompteol", pooling="mean", chunking="late", chunk_tokens=16)
    texts = [words(20 + 7 * i) for i in range(7)]
    whole = embedder.encode(texts)
    monkeypatch.setattr(embedder_module, "CHUNKED_GROUP_TEXTS", 2)
    np.testing.assert_allclose(embedder.encode(texts), whole, atol=1e-6)
    assert embedder.last_stats["chunks"] == sum(len(c.spans) for c in embedder.encode_chunks(texts))
