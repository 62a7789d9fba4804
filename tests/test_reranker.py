"""Reranker: the yes/no score against a hand computation from the model's own logits, the cached head against
the uncached pass, early exit through the logit lens, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from llembed import Embedder, InputError, Recipe, RecipeError, Reranker
from llembed.rerank_prompts import RERANK_PROMPTS, render
from tests.conftest import SENTENCES, TINY_KINDS

QUERY = "Which animal plays music?"


def hand_scores(reranker: Reranker, query: str, documents: list[str], task: str | None = None, cut: int | None = None):
    """logit(yes) - logit(no) of the full model's own forward pass over the whole prompt, one document at a time."""
    rendered = render(reranker.prompt, query, task or reranker.task, reranker.tokenizer, reranker._special_prefix)
    scores = []
    for document in documents:
        ids = rendered.head_ids + reranker.tokenizer(document, add_special_tokens=False)["input_ids"][:cut]
        with torch.no_grad():
            logits = reranker.backbone.model(input_ids=torch.tensor([ids + rendered.tail_ids])).logits
        yes, no = rendered.label_ids
        scores.append(float(logits[0, -1, yes] - logits[0, -1, no]))
    return scores


ANSWER_PROMPTS = [name for name, prompt in RERANK_PROMPTS.items() if prompt.scoring == "answer"]


def hand_likelihoods(reranker: Reranker, query: str, documents: list[str], cut: int | None = None) -> list[float]:
    """Mean log-probability of the query's tokens after each document less the same after no document, from the
    full model's own logits over the whole prompt, one document at a time."""
    rendered = render(reranker.prompt, query, reranker.task, reranker.tokenizer, reranker._special_prefix)
    query_ids = rendered.query_ids

    def mean_log_probability(document_ids: list[int]) -> float:
        ids = rendered.head_ids + document_ids + rendered.tail_ids + query_ids
        with torch.no_grad():
            logits = reranker.backbone.model(input_ids=torch.tensor([ids])).logits[0].float()
        log_probs = torch.log_softmax(logits[-len(query_ids) - 1 : -1], dim=-1)
        return float(log_probs[torch.arange(len(query_ids)), torch.tensor(query_ids)].mean())

    baseline = mean_log_probability([])
    return [
        mean_log_probability(reranker.tokenizer(d, add_special_tokens=False)["input_ids"][:cut]) - baseline
        for d in documents
    ]


@pytest.mark.parametrize("kind", TINY_KINDS)
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_likelihood_scores_are_the_querys_log_probability_gain(tiny_backbones, kind, padding_side):
    reranker = Reranker(tiny_backbones[kind], Recipe(rerank_prompt="likelihood", padding_side=padding_side))
    rendered = render(reranker.prompt, QUERY, reranker.task, reranker.tokenizer, reranker._special_prefix)
    text = reranker.tokenizer.decode(rendered.head_ids + [7] + rendered.tail_ids + rendered.query_ids)
    assert text.startswith(reranker.tokenizer.decode(reranker._special_prefix) + "Passage: ")
    assert text.endswith(f"\nPlease write a query based on this passage.\nQuery: {QUERY}")
    got = reranker.score(QUERY, SENTENCES, batch_size=3)
    assert got == pytest.approx(hand_likelihoods(reranker, QUERY, SENTENCES), abs=1e-4)
    assert got == pytest.approx([reranker.score(QUERY, [d])[0] for d in SENTENCES], abs=1e-5)  # batch = singles
    assert reranker.last_stats["computed_tokens"] == reranker.last_stats["tokens"]  # the document comes first
    assert reranker.rank(QUERY, SENTENCES, top_n=1)[0]["index"] == max(range(len(got)), key=got.__getitem__)


def test_likelihood_cuts_documents_around_the_query_and_trains_with_the_same_scores(tiny_backbones):
    backbone = tiny_backbones["qwen2"]
    long_document = " ".join(SENTENCES * 10)
    reranker = Reranker(backbone, Recipe(rerank_prompt="likelihood", max_length=120, truncation=True))
    rendered = render(reranker.prompt, QUERY, reranker.task, reranker.tokenizer, reranker._special_prefix)
    room = 120 - len(rendered.head_ids) - len(rendered.tail_ids) - len(rendered.query_ids)
    assert reranker.score(QUERY, [long_document]) == pytest.approx(
        hand_likelihoods(reranker, QUERY, [long_document], cut=room), abs=1e-4
    )
    assert reranker.last_stats["truncated"] == 1
    trained = reranker.forward([QUERY, "Where do markets fall?"], [SENTENCES[:3], SENTENCES[-3:]])
    assert trained.shape == (2, 3) and trained.requires_grad
    expected = [reranker.score(QUERY, SENTENCES[:3]), reranker.score("Where do markets fall?", SENTENCES[-3:])]
    torch.testing.assert_close(trained.detach(), torch.tensor(expected), atol=1e-4, rtol=0)
    with pytest.raises(RecipeError, match="rerank_labels apply to yes/no prompts"):
        Reranker(backbone, Recipe(rerank_prompt="likelihood", rerank_labels=["Yes", "No"]))


@pytest.mark.parametrize("kind", TINY_KINDS)
@pytest.mark.parametrize("prompt", ANSWER_PROMPTS)
def test_score_equals_the_models_own_answer_logits(tiny_backbones, kind, prompt):
    reranker = Reranker(tiny_backbones[kind], Recipe(rerank_prompt=prompt))
    got = reranker.score(QUERY, SENTENCES, batch_size=2)
    assert got == pytest.approx(hand_scores(reranker, QUERY, SENTENCES), abs=1e-4)
    assert reranker.last_stats["computed_tokens"] < reranker.last_stats["tokens"]  # the head ran once


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_cached_head_equals_uncached_and_batches_equal_singles(tiny_backbones, padding_side):
    reranker = Reranker(tiny_backbones["llama"], Recipe(padding_side=padding_side))
    cached = reranker.score(QUERY, SENTENCES, batch_size=3)
    singles = [reranker.score(QUERY, [document])[0] for document in SENTENCES]
    reranker.prefix_cache = False
    uncached = reranker.score(QUERY, SENTENCES, batch_size=5)
    assert reranker.last_stats["computed_tokens"] == reranker.last_stats["tokens"]
    assert cached == pytest.approx(uncached, abs=1e-5)
    assert cached == pytest.approx(singles, abs=1e-5)


def test_the_chat_prompt_is_the_tokenizers_chat_template(tiny_backbones):
    reranker = Reranker(tiny_backbones["llama"])
    assert reranker.prompt.name == "chat"  # the tokenizer has a chat template
    rendered = render(reranker.prompt, QUERY, "Find music.", reranker.tokenizer, reranker._special_prefix)
    document_ids = reranker.tokenizer(SENTENCES[0], add_special_tokens=False)["input_ids"]
    text = reranker.tokenizer.decode(rendered.head_ids + document_ids + rendered.tail_ids)
    expected = reranker.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": RERANK_PROMPTS["chat"].system},
            {"role": "user", "content": f"<Instruct>: Find music.\n<Query>: {QUERY}\n<Document>: {SENTENCES[0]}"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == expected
    assert [reranker.tokenizer.decode([i]) for i in rendered.label_ids] == ["yes", "no"]


def test_early_exit_reads_a_middle_layer_through_the_final_norm_and_head(tiny_backbones):
    backbone = tiny_backbones["llama"]
    reranker = Reranker(backbone, Recipe(layer=2))
    rendered = render(reranker.prompt, QUERY, reranker.task, reranker.tokenizer, reranker._special_prefix)
    expected = []
    for document in SENTENCES[:3]:
        document_ids = reranker.tokenizer(document, add_special_tokens=False)["input_ids"]
        ids = rendered.head_ids + document_ids + rendered.tail_ids
        with torch.no_grad():
            states = backbone.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            logits = backbone.model.lm_head(backbone.model.model.norm(states[2][0, -1]))
        expected.append(float(logits[rendered.label_ids[0]] - logits[rendered.label_ids[1]]))
    assert reranker.score(QUERY, SENTENCES[:3]) == pytest.approx(expected, abs=1e-4)


def test_probabilities_rank_and_pairs(tiny_backbones):
    reranker = Reranker(tiny_backbones["qwen2"])
    raw = reranker.score(QUERY, SENTENCES)
    probabilities = reranker.score(QUERY, SENTENCES, normalize=True)
    assert probabilities == pytest.approx([1 / (1 + math.exp(-s)) for s in raw], abs=1e-6)
    ranked = reranker.rank(QUERY, SENTENCES, top_n=3, return_documents=True)
    order = sorted(range(len(raw)), key=lambda i: -raw[i])[:3]
    assert [hit["index"] for hit in ranked] == order
    assert [hit["document"] for hit in ranked] == [SENTENCES[i] for i in order]
    other = "Where do markets fall?"
    pairs = [(QUERY, SENTENCES[0]), (other, SENTENCES[2]), (QUERY, SENTENCES[3])]
    expected = [raw[0], reranker.score(other, [SENTENCES[2]])[0], raw[3]]
    assert reranker.score_pairs(pairs) == pytest.approx(expected, abs=1e-5)


def test_a_calibrated_reranker_maps_scores_through_its_platt_fit(tiny_backbones):
    plain = Reranker(tiny_backbones["qwen2"])
    calibrated = Reranker(tiny_backbones["qwen2"], Recipe(rerank_calibration=[0.5, -1.25]))
    raw = plain.score(QUERY, SENTENCES)
    assert calibrated.score(QUERY, SENTENCES) == pytest.approx(raw, abs=1e-6)  # the order is the model's own
    expected = [1 / (1 + math.exp(-(0.5 * s - 1.25))) for s in raw]
    assert calibrated.score(QUERY, SENTENCES, normalize=True) == pytest.approx(expected, abs=1e-6)
    assert calibrated.probabilities([0.0, 2.5]) == pytest.approx([1 / (1 + math.exp(1.25)), 0.5], abs=1e-9)
    for bad in ([0.0, 1.0], [-1.0, 0.0], [1.0], [1.0, float("nan")], ["1", 0.0], [True, 0.0]):
        with pytest.raises(RecipeError, match="rerank_calibration must be \\[scale, bias\\]"):
            Recipe(rerank_calibration=bad)


def test_a_custom_task_and_template(tiny_backbones):
    recipe = Recipe(rerank_prompt="Q: {query}\nD: {document}\nRelevant?", rerank_labels=[" Yes", " No"], task="x")
    reranker = Reranker(tiny_backbones["gpt2"], recipe)
    assert reranker.score(QUERY, SENTENCES[:2], task="Find songs") == pytest.approx(
        hand_scores(reranker, QUERY, SENTENCES[:2], task="Find songs"), abs=1e-4
    )


def test_over_long_documents_are_cut_under_truncation_or_rejected(tiny_backbones):
    backbone = tiny_backbones["llama"]
    long_document = " ".join(SENTENCES * 10)
    strict = Reranker(backbone, Recipe(max_length=120))
    with pytest.raises(InputError, match=r"document 1 is \d+ tokens; with the query and prompt only \d+ fit"):
        strict.score(QUERY, [SENTENCES[0], long_document])
    cutting = Reranker(backbone, Recipe(max_length=120, truncation=True))
    rendered = render(cutting.prompt, QUERY, cutting.task, cutting.tokenizer, cutting._special_prefix)
    room = 120 - len(rendered.head_ids) - len(rendered.tail_ids)
    assert cutting.score(QUERY, [long_document]) == pytest.approx(
        hand_scores(cutting, QUERY, [long_document], cut=room), abs=1e-4
    )
    assert cutting.last_stats["truncated"] == 1
    with pytest.raises(InputError, match="leaving no room for a document"):
        Reranker(backbone, Recipe(max_length=20)).score(QUERY, [SENTENCES[0]])


def test_bad_input_is_one_clear_error(tiny_backbones, default_model_dir):
    reranker = Reranker(tiny_backbones["llama"])
    with pytest.raises(InputError, match="documents is empty"):
        reranker.score(QUERY, [])
    with pytest.raises(InputError, match="text 1 is empty"):
        reranker.score(QUERY, ["fine", "  "])
    with pytest.raises(InputError, match="text 0 is int"):
        reranker.score(QUERY, [3])
    with pytest.raises(InputError, match="query must be a non-empty string"):
        reranker.score("", ["fine"])
    with pytest.raises(InputError, match="top_n must be a positive integer"):
        reranker.rank(QUERY, ["fine"], top_n=0)
    with pytest.raises(InputError, match="must be one"):
        Reranker(tiny_backbones["llama"], Recipe(rerank_labels=["absolutely yes", "no"]))
    with pytest.raises(RecipeError, match=r"put \{query\} before \{document\}"):
        Recipe(rerank_prompt="{document} then {query}")
    with pytest.raises(RecipeError, match="unknown rerank_prompt 'chatty'"):
        Recipe(rerank_prompt="chatty")
    with pytest.raises(RecipeError, match="two different answer words"):
        Recipe(rerank_labels=["yes", "yes"])
    with pytest.raises(RecipeError, match="is an encoder"):
        Reranker.from_pretrained("all-minilm-l6-v2")


def test_a_reranker_on_an_embedders_model_shares_it(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(layer=2, pooling="mean"))
    reranker = Reranker.of(embedder)
    assert reranker.backbone is embedder.backbone
    assert reranker.layer_ids == [embedder.backbone.num_layers]  # the reranker's own default: the final layer
    assert reranker.recipe.truncation


def test_rerank_fields_do_not_change_an_embedding_recipes_digest():
    assert Recipe(prompt="prompteol").digest() == Recipe(prompt="prompteol", rerank_prompt="plain").digest()
    assert Recipe().digest() == Recipe(rerank_calibration=[2.0, 0.5]).digest()


def test_answer_logits_are_multiplied_in_float32_under_a_bf16_model(tiny_model_dirs):
    """bf16 logits near 20 move in steps of 0.125, so unrelated passages tied; the two answer rows are now
    multiplied in float32 from the (bf16) final-norm states."""
    from llembed.backbone import Backbone
    from llembed.model_sources import locate
    from llembed.sparse import lens_logits

    backbone = Backbone.load(locate(tiny_model_dirs["llama"]), dtype="bfloat16")
    states = {backbone.num_layers: torch.randn(4, backbone.hidden_size, dtype=torch.bfloat16) * 30}
    with torch.no_grad():
        head = backbone.lm_head().weight[[5, 7]]
        got = lens_logits(backbone, states, [5, 7])
        want = states[backbone.num_layers].float() @ head.float().T  # the last layer's states are already normed
        bf16 = states[backbone.num_layers] @ head.T
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)
    assert not torch.allclose(bf16.float(), want, atol=1e-4)  # what it was: bf16 rounding
