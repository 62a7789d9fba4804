"""Long-document readings and their pairings against the library's own paths (truncation, chunking, chunks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llembed import Embedder, Recipe
from llembed.errors import InputError
from llembed.evaluation.datasets import Dataset
from llembed.evaluation.long_documents import evaluate_long
from llembed.evaluation.tasks import make_task

from ..test_chunked import WORDS


def words(count: int, shift: int) -> str:
    return " ".join(WORDS[(7 * i + shift) % len(WORDS)] for i in range(count))


CORPUS = {f"d{i}": words(5 + 9 * i, i) for i in range(5)}  # 5 to 41 words: one to six chunks of 8
QUERIES = {"q1": words(20, 11), "q2": "cat dog " + words(3, 2)}
QRELS = {"q1": {"d4": 1}, "q2": {"d1": 1}}


@pytest.fixture(scope="module")
def run(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32", prompt="none", pooling="mean"))
    task = make_task(Dataset("retrieval", "tiny-long", Path("."), corpus=CORPUS, queries=QUERIES, qrels=QRELS))
    rows, seconds = evaluate_long(embedder, task, ["cut 8", "chunks"], ["cut 8", "chunks", "late chunks"],
                                  chunk_tokens=8, batch_size=2)  # fmt: skip
    return embedder, task, {(r["query"], r["document"], r["scoring"]): r for r in rows}, seconds


def test_one_vector_pairings_are_the_recipes_own_vectors(run):
    embedder, task, rows, seconds = run
    cut = embedder.replace(truncation=True, max_length=8)
    chunked = embedder.replace(chunking="mean", chunk_tokens=8, max_length=16)
    queries, documents = list(QUERIES.values()), list(CORPUS.values())
    by_hand = task.score_similarity(cut.encode(queries, normalize=True) @ chunked.encode(documents, normalize=True).T)
    assert rows[("cut 8", "chunks", "vector")]["ndcg_at_10"] == pytest.approx(by_hand["ndcg_at_10"], abs=1e-6)
    assert ("cut 8", "cut 8", "maxsim") not in rows  # one vector a side: nothing more to pair
    assert set(seconds) == {"query: cut 8", "query: chunks", "document: cut 8", "document: chunks",
                            "document: late chunks"}  # fmt: skip


def test_maxsim_scores_a_document_by_its_best_chunk(run):
    embedder, task, rows, _ = run
    cut = embedder.replace(truncation=True, max_length=8)
    late = embedder.replace(chunking="late", chunk_tokens=8, max_length=512)
    queries = cut.encode(list(QUERIES.values()), normalize=True)
    chunks = late.encode_chunks(list(CORPUS.values()), normalize=True)
    tokens = [len(embedder.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in CORPUS.values()]
    assert [len(c.vectors) for c in chunks] == [-(-n // 8) for n in tokens] and len(chunks[-1].vectors) > 4
    best = np.array([[float((c.vectors @ q).max()) for c in chunks] for q in queries])
    expected = task.score_similarity(best)["ndcg_at_10"]
    assert rows[("cut 8", "late chunks", "maxsim")]["ndcg_at_10"] == pytest.approx(expected, abs=1e-6)


def test_an_unknown_reading_is_named(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32"))
    task = make_task(Dataset("retrieval", "tiny-long", Path("."), corpus=CORPUS, queries=QUERIES, qrels=QRELS))
    with pytest.raises(InputError, match="unknown reading 'cut 9'"):
        evaluate_long(embedder, task, ["cut 9"], ["cut 256"])


def test_evaluate_with_multivector_is_maxsim_over_both_sides(tiny_backbones):
    from llembed.evaluation.evaluate import evaluate
    from llembed.multivector import embed_multivector, maxsim

    embedder = Embedder(tiny_backbones["llama"], Recipe(dtype="float32", prompt="none"))
    task = make_task(Dataset("retrieval", "tiny-long", Path("."), corpus=CORPUS, queries=QUERIES, qrels=QRELS))
    dense, late = evaluate(embedder, task, batch_size=2, multivector="token")
    tokens = sum(len(embedder.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in [*QUERIES.values(),
                                                                                         *CORPUS.values()])  # fmt: skip
    assert (dense.variant, late.variant) == ("dense", "multivector (token)")
    by_hand = maxsim(embed_multivector(embedder, list(QUERIES.values()), "token", side="query"),
                     embed_multivector(embedder, list(CORPUS.values()), "token"))  # fmt: skip
    assert late.scores == pytest.approx(task.score_similarity(by_hand), abs=1e-6)
    assert late.efficiency["texts"] == len(QUERIES) + len(CORPUS) and late.efficiency["tokens"] == tokens
