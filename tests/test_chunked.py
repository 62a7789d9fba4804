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


def test_first_chunking_averages_query_chunks_and_reads_a_documents_first_chunk(tiny_backbones):
    embedder = make(tiny_backbones, prompt="instructeol", pooling="last", chunking="first", chunk_tokens=8)
    texts = [words(30), words(5)]
    as_mean = embedder.replace(chunking="mean")
    queries = embedder.pool(texts, [embedder.spec], side="query", task="Find it")[embedder.spec]
    assert torch.equal(queries, as_mean.pool(texts, [as_mean.spec], side="query", task="Find it")[as_mean.spec])
    assert embedder.last_stats["chunks"] == 4 + 1  # 30 words → 4 chunks of 8 tokens; 5 words → 1
    plain = embedder.replace(chunking="none")
    first = [words(8), words(5)]  # one token a word: the first chunk is the first 8 words
    for side in ("document", "text"):
        got = embedder.pool(texts, [embedder.spec], side=side)[embedder.spec]
        assert torch.equal(got, plain.pool(first, [plain.spec], side=side)[plain.spec])
    # the default chunk is 256 tokens (what was measured), not the 512 of `mean` and `late`
    default = make(tiny_backbones, prompt="none", chunking="first", max_length=512)
    long_query = words(300)
    got = default.pool([long_query], [default.spec], side="query")[default.spec]
    by_hand = default.replace(chunking="mean", chunk_tokens=256)
    assert default.last_stats["chunks"] == 2
    assert torch.equal(got, by_hand.pool([long_query], [by_hand.spec], side="query")[by_hand.spec])
    unresolved = embedder.replace(chunking="auto")  # auto is chosen per collection; alone it is `none`
    assert torch.equal(
        unresolved.pool(texts[1:], [plain.spec])[plain.spec], plain.pool(texts[1:], [plain.spec])[plain.spec]
    )


def test_auto_chooses_first_for_short_collections_and_mean_for_long_ones(tiny_backbones):
    from llembed.chunked import resolve_chunking
    from llembed.chunking import choose_chunking

    assert choose_chunking([100, 200, 900], 256) == "first"  # the median fits one chunk (AILA statutes, NFCorpus)
    assert choose_chunking([100, 300, 900], 256) == "none"  # within 4 chunks: read whole (SciFact-like)
    assert choose_chunking([100, 1100, 5000], 256) == "mean"  # beyond (AILA case documents)
    assert choose_chunking([], 256) == "first"
    auto = make(tiny_backbones, prompt="none", chunking="auto", chunk_tokens=8)
    one = resolve_chunking(auto, [words(5), words(8), words(80)])  # median 8 tokens: one chunk of 8
    whole = resolve_chunking(auto, [words(5), words(32), words(80)])  # median 32 tokens: 4 chunks of 8
    long = resolve_chunking(auto, [words(5), words(33), words(80)])
    assert (one.recipe.chunking, one.recipe.chunk_tokens) == ("first", 8)
    assert (whole.recipe.chunking, whole.recipe.chunk_tokens, whole.recipe.truncation) == ("none", None, True)
    assert (long.recipe.chunking, long.recipe.chunk_tokens) == ("mean", 8)
    assert resolve_chunking(auto.replace(chunking="late"), [words(40)]).recipe.chunking == "late"  # not auto
    assert resolve_chunking(make(tiny_backbones, chunking="auto"), [words(5)]).recipe.chunk_tokens == 256


def test_evaluation_and_index_resolve_auto_for_their_collection(tiny_backbones, tmp_path):
    from pathlib import Path

    from llembed.evaluation.datasets import Dataset
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.tasks import make_task
    from llembed.index import VectorIndex, build_index
    from llembed.index.build import Corpus

    corpus = {f"d{i}": words(40 + 7 * i) for i in range(4)}  # all over 4 chunks of 8: `mean`
    queries = {"q1": words(30), "q2": words(3)}
    qrels = {"q1": {"d3": 1}, "q2": {"d0": 1}}
    task = make_task(Dataset("retrieval", "tiny", Path("."), corpus=corpus, queries=queries, qrels=qrels))
    auto = make(tiny_backbones, prompt="none", chunking="auto", chunk_tokens=8)
    (got,) = evaluate(auto, task)
    (expected,) = evaluate(auto.replace(chunking="mean"), task)
    assert got.scores == expected.scores
    built = build_index(auto, Corpus(list(corpus), list(corpus.values())), tmp_path / "idx", show_progress_bar=False)
    index = VectorIndex.load(built, auto)  # the auto embedder is accepted: the index says what it chose
    assert (index.recipe.chunking, index.embedder.recipe.chunking) == ("mean", "mean")
    vectors = auto.replace(chunking="mean").encode_documents(list(corpus.values()))
    hits = index.search(queries["q1"], k=4)[0]
    query = auto.replace(chunking="mean").encode_queries([queries["q1"]])[0]
    assert [h.score for h in hits] == pytest.approx(sorted((vectors @ query).tolist(), reverse=True), abs=1e-5)


def test_embed_corpus_refuses_auto(tmp_path):
    from llembed import Recipe
    from llembed.corpus import embed_corpus
    from llembed.errors import InputError

    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "a", "text": "hello"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="chunking auto is chosen per collection"):
        embed_corpus([source], tmp_path / "out", Recipe(model="x", chunking="auto"), runner="local")


def test_a_labelled_sample_settles_auto_by_its_scores(tiny_backbones):
    from pathlib import Path

    from llembed.errors import InputError
    from llembed.evaluation.datasets import Dataset
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.long_documents import choose_chunking_on_sample
    from llembed.evaluation.tasks import make_task

    corpus = {f"d{i}": words(12 + 9 * i) for i in range(6)}
    queries = {"q1": words(30), "q2": words(3), "q3": words(17)}
    qrels = {"q1": {"d3": 1}, "q2": {"d0": 1}, "q3": {"d5": 1, "d1": 1}}
    sample = Dataset("retrieval", "sample", Path("."), corpus=corpus, queries=queries, qrels=qrels)
    auto = make(tiny_backbones, prompt="none", chunking="auto", chunk_tokens=8)
    chosen, scores = choose_chunking_on_sample(auto, sample)
    task = make_task(sample)
    by_hand = {
        "first": evaluate(auto.replace(chunking="first"), task)[0].scores["ndcg_at_10"],
        "mean": evaluate(auto.replace(chunking="mean"), task)[0].scores["ndcg_at_10"],
        "none": evaluate(auto.replace(chunking="none", chunk_tokens=None, truncation=True), task)[0].scores[
            "ndcg_at_10"
        ],
    }
    assert scores == pytest.approx(by_hand, abs=1e-9)
    best = max(by_hand.values())
    winners = [name for name, value in by_hand.items() if value == best]
    # ties go to the length rule's choice (median 34 tokens > 4 chunks of 8: mean)
    assert chosen.recipe.chunking == ("mean" if "mean" in winners else winners[0])
    assert chosen.recipe.chunking != "auto"
    same, none = choose_chunking_on_sample(auto.replace(chunking="late"), sample)  # not auto: left as it is
    assert (same.recipe.chunking, none) == ("late", {})
    with pytest.raises(InputError, match="labelled retrieval set"):
        choose_chunking_on_sample(auto, Dataset("sts", "x", Path("."), rows=[{"a": "x", "b": "y", "score": 1.0}]))
    with pytest.raises(InputError, match="candidates"):
        choose_chunking_on_sample(auto, sample, candidates=["late"])
