"""The real bundled models, offline: SmolLM2-135M-Instruct (default) and all-MiniLM-L6-v2 (encoder baseline)."""

import numpy as np
import pytest

from llembed import Embedder
from llembed.integrations.sentence_transformers import export_sentence_transformers

from .conftest import SENTENCES

CAPITAL_PASSAGES = [
    "The stock market fell sharply on Monday.",
    "Paris is the capital and largest city of France.",
    "Bananas are a good source of potassium.",
    "The Eiffel Tower was finished in 1889.",
]
"""The issue-28 check: "What is the capital of France?" over an answer (1), a passage on Paris (3) and two off-topic."""


def test_default_model_ranks_paraphrase_above_unrelated_under_prompteol(default_embedder):
    assert default_embedder.recipe.prompt == "prompteol" and default_embedder.recipe.pooling == "last"
    anchor, paraphrase, unrelated = default_embedder.encode(
        ["A man is playing a guitar.", "Someone plays a guitar.", "The stock market fell sharply."]
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.05


@pytest.mark.parametrize("pooling", ["last", "mean", "weighted_mean", "max"])
def test_default_model_batch_equals_singles(default_embedder, pooling):
    embedder = Embedder(default_embedder.backbone, default_embedder.recipe.replace(pooling=pooling))
    batched = embedder.encode(SENTENCES, batch_size=5)
    singles = np.stack([embedder.encode(text) for text in SENTENCES])
    assert (batched * singles).sum(axis=1).min() >= 0.9999


def test_default_model_in_bfloat16_stays_close_to_float32(default_embedder):
    bf16 = Embedder.from_pretrained(None, dtype="bfloat16")
    cosine = (bf16.encode(SENTENCES) * default_embedder.encode(SENTENCES)).sum(axis=1)
    assert cosine.min() >= 0.99


def test_sparse_vectors_of_the_default_model_are_lexical(default_embedder):
    (weights,) = default_embedder.encode_sparse(["A man is playing a guitar."], top_k=32, output="dict")
    tokens = {token.lstrip("Ġ").lower() for token in weights}
    assert tokens & {"guitar", "music", "musician", "playing", "guitarist"}


def test_minilm_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from llembed.model_sources import locate

    embedder = Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32")
    assert embedder.recipe.pooling == "mean" and embedder.recipe.max_length == 256
    reference = SentenceTransformer(str(locate("all-minilm-l6-v2").path), device="cpu").encode(SENTENCES)
    assert np.abs(embedder.encode(SENTENCES) - reference).max() < 1e-5


@pytest.mark.parametrize(
    ("recipe", "side"),
    [
        ({"prompt": "none", "pooling": "last"}, "document"),
        ({"prompt": "instruction", "pooling": "mean", "task": "Find sentences about music"}, "query"),
        ({"prompt": "Represent this sentence:\n{text}", "pooling": "weighted_mean", "exclude_prompt": True}, "query"),
        ({"prompt": "prompteol", "pooling": "last"}, "document"),  # words after the text: TemplateTransformer
        ({"prompt": "instructeol", "pooling": "last", "task": "Find sentences about music"}, "query"),
    ],
)
def test_sentence_transformers_export_reproduces_llembed(default_embedder, tmp_path, recipe, side):
    from sentence_transformers import SentenceTransformer

    embedder = Embedder(default_embedder.backbone, default_embedder.recipe.replace(**recipe))
    folder = export_sentence_transformers(embedder, tmp_path / "st")
    # a template with words after the text names llembed's TemplateTransformer: ST asks for consent to import it
    model = SentenceTransformer(str(folder), device="cpu", trust_remote_code=True)
    ours = embedder.encode_queries(SENTENCES) if side == "query" else embedder.encode_documents(SENTENCES)
    theirs = model.encode(SENTENCES, prompt_name=side)
    assert np.abs(ours - theirs).max() < 1e-4


def test_export_refuses_what_sentence_transformers_cannot_express(default_embedder, tmp_path):
    from llembed import RecipeError

    refused = (
        {"prompt": "echo"},  # the text twice
        {"prompt": "prompteol", "exclude_prompt": True},  # ST would pool the words after the text
        {"prompt": "metaeol"},
        {"prompt": "none", "layer": 10},
        {"prompt": "none", "bidirectional": True},
        {"prompt": "none", "pooling": "eos"},
        {"prompt": "instruction", "task": "Find it", "exclude_prompt": True, "pooling": "mean"},
    )
    for change in refused:
        embedder = Embedder(default_embedder.backbone, default_embedder.recipe.replace(**change))
        with pytest.raises(RecipeError):
            export_sentence_transformers(embedder, tmp_path / "st")
        assert not (tmp_path / "st").exists()


def test_the_tuned_alias_loads_its_adapter_and_instructs_only_queries(default_embedder):
    tuned = Embedder.from_pretrained("smollm2-135m-tuned", dtype="float32")
    untrained = Embedder(default_embedder.backbone, tuned.recipe.replace(adapter=None))
    assert tuned.recipe.prompt == "instructeol" and tuned.recipe.adapter.endswith("adapter")
    texts = ["A man is playing a guitar.", "Someone plays a guitar.", "The stock market fell sharply."]
    vectors = tuned.encode(texts)
    assert (vectors * untrained.encode(texts)).sum(axis=1).max() < 0.99  # the adapter moved every vector
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2  # and separates paraphrase from unrelated
    task = "Given a question, retrieve passages that answer it"
    assert np.allclose(tuned.encode_documents(texts), vectors, atol=1e-6)  # documents and symmetric texts alike
    assert (tuned.encode_queries(texts, task=task) * vectors).sum(axis=1).max() < 0.999  # queries instructed


def test_the_shipped_reranker_puts_the_answer_first_with_calibrated_probabilities():
    from llembed import Reranker

    reranker = Reranker.from_pretrained("smollm2-135m-reranker", dtype="float32")
    assert reranker.recipe.rerank_calibration is not None and reranker.recipe.adapter.endswith("adapter")
    passages = CAPITAL_PASSAGES
    scores = reranker.score("What is the capital of France?", passages)
    assert max(range(len(passages)), key=scores.__getitem__) == 1  # the answer first: the zero-shot check
    assert scores[1] > max(scores[0], scores[2]) + 1.0  # by a clear margin over the off-topic passages
    probabilities = reranker.probabilities(scores)  # sigmoid(scale · score + bias), fitted on held-aside pairs
    scale, bias = reranker.recipe.rerank_calibration
    assert probabilities == pytest.approx([1 / (1 + np.exp(-(scale * s + bias))) for s in scores], abs=1e-6)
    assert probabilities[1] > 0.75 and np.argmax(probabilities) == 1


def test_the_default_query_likelihood_reranker_puts_the_answer_first_and_the_off_topic_last():
    from llembed import Reranker
    from llembed.model_sources import DEFAULT_RERANKER

    assert DEFAULT_RERANKER == "smollm2-135m-ql-reranker"  # what serve and rerank answer with
    reranker = Reranker.from_pretrained(DEFAULT_RERANKER, dtype="float32")
    assert reranker.likelihood and reranker.recipe.adapter is None and reranker.recipe.rerank_calibration
    passages = CAPITAL_PASSAGES
    scores = reranker.score("What is the capital of France?", passages)
    assert np.argsort(scores)[::-1].tolist()[:2] == [1, 3]  # the answer, then the other passage about Paris
    assert scores[1] > max(scores[0], scores[2]) + 0.3  # nats per query token over the off-topic passages
    assert reranker.probabilities(scores)[1] > reranker.probabilities(scores)[0]


def test_the_shipped_multivector_model_puts_the_answer_first_by_maxsim():
    """Late-interaction training separates what the general adapter's token vectors barely do: the answer's
    MaxSim over the best distractor goes from about 0.02 (smollm2-135m-tuned) to about 0.2."""
    from llembed.multivector import embed_multivector, maxsim

    passages = CAPITAL_PASSAGES
    embedder = Embedder.from_pretrained("smollm2-135m-multivector", dtype="float32")
    documents = embed_multivector(embedder, passages, "token", side="document")
    assert documents.counts.tolist() == [
        len(embedder.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in passages
    ]
    task = "Given a question, retrieve passages that answer it"
    query = embed_multivector(embedder, ["What is the capital of France?"], "token", side="query", task=task)
    scores = maxsim(query, documents)[0]
    assert int(np.argmax(scores)) == 1
    assert scores[1] > np.delete(scores, 1).max() + 0.1
