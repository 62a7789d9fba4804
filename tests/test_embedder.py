"""The Embedder on tiny random decoders: batches equal singles, and each recipe option does what it says."""

import numpy as np
import pytest
import torch

from llembed import Embedder, InputError, PoolSpec, Recipe, RecipeError
from llembed.backbone import Backbone
from llembed.model_sources import locate
from llembed.prompts import STRATEGIES

from .conftest import SENTENCES, TINY_KINDS

POOLINGS = ["last", "eos", "mean", "weighted_mean", "first", "max"]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def make(backbones, kind, **recipe) -> Embedder:
    recipe.setdefault("dtype", "float32")
    return Embedder(backbones[kind], Recipe(**recipe))


@pytest.mark.parametrize("kind", TINY_KINDS)
@pytest.mark.parametrize("prompt", list(STRATEGIES))
@pytest.mark.parametrize("side", ["left", "right"])
def test_batch_equals_singles_for_every_pooling(tiny_backbones, kind, prompt, side):
    task = "Retrieve similar sentences" if prompt == "instruction" else None
    for pooling in POOLINGS:
        embedder = make(tiny_backbones, kind, prompt=prompt, pooling=pooling, padding_side=side, task=task)
        batched = embedder.encode_queries(SENTENCES, batch_size=len(SENTENCES))
        singles = np.stack([embedder.encode_queries(text) for text in SENTENCES])
        assert cosine_rows(batched, singles).min() >= 0.9999, (kind, prompt, side, pooling)
        assert np.abs(batched - singles).max() < 1e-4


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_batch_equals_singles_in_bfloat16(tiny_model_dirs, side, pooling):
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="bfloat16")
    embedder = Embedder(backbone, Recipe(prompt="prompteol", pooling=pooling, padding_side=side, dtype="bfloat16"))
    batched = embedder.encode(SENTENCES, batch_size=len(SENTENCES))
    singles = np.stack([embedder.encode(text) for text in SENTENCES])
    assert batched.dtype == np.float32
    assert cosine_rows(batched, singles).min() >= 0.999


def test_mixed_batch_sizes_give_the_same_vectors(tiny_backbones):
    embedder = make(tiny_backbones, "qwen2", prompt="none", pooling="mean")
    assert np.allclose(embedder.encode(SENTENCES, batch_size=2), embedder.encode(SENTENCES, batch_size=5), atol=1e-5)


def test_pool_reads_every_spec_off_one_forward_pass(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="last")
    embedder.prefix_cache = False  # else the shared prefix is one more (tiny) pass
    specs = [PoolSpec("last", (4,)), PoolSpec("mean", (2,)), PoolSpec("weighted_mean", (2, 4))]
    calls = []
    handle = embedder.backbone.layers[0].register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        pooled = embedder.pool(SENTENCES, specs, batch_size=len(SENTENCES))
    finally:
        handle.remove()
    assert len(calls) == 1
    for spec in specs:
        alone = make(tiny_backbones, "llama", prompt="prompteol", pooling=spec.pooling, layer=list(spec.layers))
        expected = alone.encode(SENTENCES, normalize=False)
        assert np.allclose(pooled[spec].numpy(), expected, atol=1e-5)


def test_layer_average_is_the_mean_of_the_layers(tiny_backbones):
    one = {layer: make(tiny_backbones, "llama", prompt="none", pooling="mean", layer=layer) for layer in (2, 3)}
    both = make(tiny_backbones, "llama", prompt="none", pooling="mean", layer="2:4")
    expected = (one[2].encode(SENTENCES, normalize=False) + one[3].encode(SENTENCES, normalize=False)) / 2
    assert np.allclose(both.encode(SENTENCES, normalize=False), expected, atol=1e-5)


def test_exclude_prompt_pools_only_the_text_tokens(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="mean", exclude_prompt=True)
    text = "A cat sits on the mat"
    item = embedder.prompt_tokenizer.tokenize_texts([text], embedder.strategy.query_templates[0])[0]
    from llembed.tokenization import collate

    batch = collate([item], embedder.tokenizer.pad_token_id, "right")
    states = embedder.backbone.hidden_states(batch, [embedder.backbone.num_layers])[embedder.backbone.num_layers]
    mask = torch.tensor(item.text_mask)
    expected = states[0][mask].mean(dim=0).numpy()
    assert 0 < mask.sum() < len(item.ids)
    assert np.allclose(embedder.encode(text, normalize=False), expected, atol=1e-5)
    included = make(tiny_backbones, "llama", prompt="prompteol", pooling="mean").encode(text, normalize=False)
    assert np.allclose(included, states[0].mean(dim=0).numpy(), atol=1e-5)


def test_echo_pools_the_second_copy(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="echo", pooling="mean")
    text = "dogs bark at night"
    item = embedder.prompt_tokenizer.tokenize_texts([text], embedder.strategy.query_templates[0])[0]
    from llembed.tokenization import collate

    batch = collate([item], embedder.tokenizer.pad_token_id, "right")
    states = embedder.backbone.hidden_states(batch, [4])[4][0]
    second = torch.tensor(item.text_mask)
    assert second.sum() == len(embedder.tokenizer(" " + text, add_special_tokens=False)["input_ids"])
    assert not second[: len(item.ids) // 2].any()
    assert np.allclose(embedder.encode(text, normalize=False), states[second].mean(dim=0).numpy(), atol=1e-5)


def test_metaeol_averages_its_eight_prompts(tiny_backbones):
    from llembed.prompts import METAEOL

    meta = make(tiny_backbones, "gpt2", prompt="metaeol", pooling="last")
    singles = [
        make(tiny_backbones, "gpt2", prompt=t, pooling="last").encode(SENTENCES[:2], normalize=False) for t in METAEOL
    ]
    assert np.allclose(meta.encode(SENTENCES[:2], normalize=False), np.mean(singles, axis=0), atol=1e-5)


def test_token_prepending_changes_the_vector_and_uses_the_first_quarter_of_layers(tiny_backbones):
    tp = make(tiny_backbones, "llama", prompt="token_prepending", pooling="last")
    assert tp.recipe.tp_layers == [1, 2]
    plain = make(tiny_backbones, "llama", prompt="token_prepending", pooling="last", tp_layers=[3, 4])
    assert not np.allclose(tp.encode(SENTENCES[:2]), plain.encode(SENTENCES[:2]), atol=1e-4)


def test_sparse_top_k_ids_are_the_top_logits(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="last", normalize=False)
    matrix = embedder.encode_sparse(SENTENCES[:3], top_k=16)
    spec = PoolSpec("last", (4,))
    logits = embedder.lm_logits({4: embedder.pool(SENTENCES[:3], [spec])[spec]})
    for row in range(3):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        positive = logits[row][logits[row] > 0]
        expected_ids = set(logits[row].topk(min(16, len(positive))).indices.tolist())
        assert set(matrix.indices[start:end].tolist()) == expected_ids
        ids = matrix.indices[start:end]
        assert np.allclose(matrix.data[start:end], np.log1p(logits[row][ids].numpy()), atol=1e-5)
    dicts = embedder.encode_sparse(SENTENCES[:1], top_k=4, output="dict")
    assert len(dicts[0]) <= 4 and all(isinstance(t, str) and w > 0 for t, w in dicts[0].items())
    assert list(dicts[0].values()) == sorted(dicts[0].values(), reverse=True)


def test_sparse_below_the_final_layer_applies_the_final_norm(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="none", pooling="last", layer=2)
    spec = PoolSpec("last", (2,))
    pooled = embedder.pool(["hello"], [spec])[spec]
    backbone = embedder.backbone
    expected = backbone.lm_head()(backbone.final_norm()(pooled))
    assert torch.allclose(embedder.lm_logits({2: pooled}), expected, atol=1e-5)


def test_output_formats(tiny_backbones):
    base = make(tiny_backbones, "llama", prompt="none", pooling="mean")
    full = base.encode(SENTENCES)
    assert np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    cut = make(tiny_backbones, "llama", prompt="none", pooling="mean", truncate_dim=16).encode(SENTENCES)
    raw = base.encode(SENTENCES, normalize=False)[:, :16]
    assert np.allclose(cut, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    half = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="float16").encode(SENTENCES)
    assert half.dtype == np.float16 and np.allclose(half, full, atol=1e-3)
    ubin = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="ubinary").encode(SENTENCES)
    assert ubin.dtype == np.uint8 and ubin.shape == (5, 8)
    assert (np.unpackbits(ubin, axis=1).astype(bool) == (full > 0)).all()
    binary = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="binary").encode(SENTENCES)
    assert binary.dtype == np.int8 and (binary.astype(np.int16) + 128 == ubin).all()
    int8 = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="int8").encode(SENTENCES)
    lo, hi = full.min(axis=0), full.max(axis=0)
    expected = ((full - lo) / ((hi - lo) / 255) - 128).astype(np.int8)
    assert int8.dtype == np.int8 and (np.abs(int8.astype(int) - expected.astype(int)) <= 1).all()


def test_calibrated_int8_is_independent_of_the_batch(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="int8")
    with pytest.raises(RecipeError, match="calibrate"):
        embedder.encode(["one text alone"])
    uncalibrated = embedder.recipe
    embedder = embedder.calibrate(SENTENCES)
    assert uncalibrated.quantization_ranges is None  # the original embedder's recipe never changes
    recipe = embedder.recipe
    assert len(recipe.quantization_ranges) == 2 and len(recipe.quantization_ranges[0]) == 64
    batch = embedder.encode(SENTENCES)
    singles = np.stack([embedder.encode(t) for t in SENTENCES])
    assert (np.abs(batch.astype(int) - singles.astype(int)) <= 1).all()


def test_similarity_is_cosine_also_for_packed_binary(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="none", pooling="mean")
    vectors = embedder.encode(SENTENCES)
    assert np.allclose(embedder.similarity(vectors, vectors), vectors @ vectors.T, atol=1e-5)
    binary = make(tiny_backbones, "llama", prompt="none", pooling="mean", precision="ubinary")
    packed = binary.encode(SENTENCES[:2])
    signs = np.where(vectors[:2] > 0, 1.0, -1.0)
    assert np.allclose(binary.similarity(packed, packed), signs @ signs.T / 64, atol=1e-6)


def test_instruction_documents_are_plain_text(tiny_backbones):
    instructed = make(tiny_backbones, "llama", prompt="instruction", pooling="mean", task="Find the answer")
    plain = make(tiny_backbones, "llama", prompt="none", pooling="mean")
    assert np.allclose(instructed.encode_documents(SENTENCES), plain.encode(SENTENCES), atol=1e-5)
    assert not np.allclose(instructed.encode_queries(SENTENCES), plain.encode(SENTENCES), atol=1e-3)
    other = instructed.encode_queries(SENTENCES, task="Classify the sentiment")
    assert not np.allclose(other, instructed.encode_queries(SENTENCES), atol=1e-4)


def test_bad_input_gets_clear_errors(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="last", max_length=24)
    assert embedder.encode([]).shape == (0, 64)
    assert embedder.encode_sparse([]).shape == (0, embedder.lm_vocab_size)
    with pytest.raises(InputError, match="text 1 is empty"):
        embedder.encode(["fine", "  "])
    with pytest.raises(InputError, match="text 1 is NoneType"):
        embedder.encode(["fine", None])
    with pytest.raises(InputError, match="text 0 is int"):
        embedder.encode([3])
    with pytest.raises(InputError, match="texts is None"):
        embedder.encode(None)
    with pytest.raises(InputError, match="over max_length=24"):
        embedder.encode(["word " * 50])
    cut = make(tiny_backbones, "llama", prompt="prompteol", pooling="last", max_length=24, truncation=True)
    assert cut.encode(["word " * 50]).shape == (1, 64)
    with pytest.raises(InputError, match="batch_size"):
        embedder.encode(["x"], batch_size=0)


def test_recipe_validation_against_the_model(tiny_backbones):
    with pytest.raises(RecipeError, match="out of range"):
        make(tiny_backbones, "llama", layer=9)
    with pytest.raises(RecipeError, match="max_length"):
        make(tiny_backbones, "llama", max_length=100_000)
    with pytest.raises(RecipeError, match="truncate_dim"):
        make(tiny_backbones, "llama", truncate_dim=65).encode(["x"])


def test_from_recipe_file_round_trip(tiny_model_dirs, tmp_path):
    embedder = Embedder.from_pretrained(
        tiny_model_dirs["qwen2"], prompt="pcoteol", pooling="weighted_mean", layer=-2, dtype="float32"
    )
    path = embedder.recipe.save(tmp_path / "recipe.yaml")
    again = Embedder.from_recipe(path)
    assert again.recipe == embedder.recipe
    assert np.allclose(again.encode(SENTENCES), embedder.encode(SENTENCES), atol=1e-6)


@pytest.mark.parametrize("kind", TINY_KINDS)
@pytest.mark.parametrize("prompt", ["prompteol", "ke", "metaeol", "icl", "echo", "token_prepending", "instruction"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_shared_prefix_cache_equals_the_full_computation(tiny_backbones, kind, prompt, side):
    task = "Retrieve similar sentences" if prompt == "instruction" else None
    for pooling in POOLINGS:
        for exclude in (False, True):
            embedder = make(
                tiny_backbones,
                kind,
                prompt=prompt,
                pooling=pooling,
                padding_side=side,
                task=task,
                exclude_prompt=exclude,
                layer=[2, 4],
            )
            embedder.backbone.prefix_cache.clear()
            cached = embedder.encode_queries(SENTENCES, batch_size=2)
            assert len(embedder.backbone.prefix_cache), "the prefix cache was not used"
            embedder.prefix_cache = False
            full = embedder.encode_queries(SENTENCES, batch_size=2)
            assert cosine_rows(cached, full).min() >= 0.9999, (kind, prompt, side, pooling, exclude)


def test_prefix_tokens_are_run_once_per_call(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="ke", pooling="last")
    widths = []
    handle = embedder.backbone.layers[0].register_forward_pre_hook(
        lambda _m, args, kwargs: widths.append((args[0] if args else kwargs["hidden_states"]).shape), with_kwargs=True
    )
    try:
        embedder.encode(SENTENCES, batch_size=5)
    finally:
        handle.remove()
    prefix = embedder.prompt_tokenizer.prefix_ids(embedder.strategy.query_templates[0])
    longest = max(
        len(i.ids) for i in embedder.prompt_tokenizer.tokenize_texts(SENTENCES, embedder.strategy.query_templates[0])
    )
    assert len(prefix) > 30
    # one pass over the prefix alone, then the batch without the prefix's columns
    assert widths == [(1, len(prefix), 64), (5, longest - len(prefix), 64)]


# ---------------------------------------------------------------------------------------------- state
def test_the_recipe_cannot_change_under_an_embedder(tiny_backbones):
    import dataclasses

    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="eos")
    with pytest.raises(AttributeError):
        embedder.recipe = Recipe(pooling="last")
    with pytest.raises(dataclasses.FrozenInstanceError):
        embedder.recipe.pooling = "last"
    other = embedder.replace(pooling="last")  # changes go through replace: a new embedder, the same backbone
    assert other.backbone is embedder.backbone and embedder.recipe.pooling == "eos"


def test_two_recipes_on_one_backbone_from_two_threads(tiny_model_dirs):
    """A causal and a bidirectional embedder share one backbone; their passes interleave from two threads and
    still give exactly what each gives alone (hooks and attention flags live on the shared modules)."""
    from concurrent.futures import ThreadPoolExecutor

    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    causal = Embedder(backbone, Recipe(prompt="prompteol", pooling="last", layer=2, dtype="float32"))
    both = causal.replace(prompt="none", pooling="mean", layer=-1, bidirectional=True)
    texts = SENTENCES * 4
    expected = {"causal": causal.encode(texts, batch_size=2), "both": both.encode(texts, batch_size=2)}

    def run(name):
        embedder = causal if name == "causal" else both
        return name, [embedder.encode(texts, batch_size=2) for _ in range(6)]

    with ThreadPoolExecutor(4) as pool:
        for name, results in pool.map(run, ["causal", "both", "causal", "both"]):
            for vectors in results:
                assert np.allclose(vectors, expected[name], atol=1e-6), name


# ---------------------------------------------------------------------------------------------- real data
def test_lenient_pool_embeds_an_empty_text_as_the_model_sees_it(tiny_backbones):
    """``strict=False`` (evaluation, corpora): the empty text's vector is the last token of its prompt alone."""
    embedder = make(tiny_backbones, "llama", prompt="prompteol", pooling="last", normalize=False)
    with pytest.raises(InputError, match="empty"):
        embedder.pool(["", "x"], [embedder.spec])
    pooled = embedder.pool(["A cat.", ""], [embedder.spec], strict=False)[embedder.spec]
    assert embedder.last_stats["empty"] == 1 and embedder.last_stats["truncated"] == 0
    backbone = embedder.backbone
    ids = backbone.tokenizer('This sentence : "" means in one word:"', return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        by_hand = backbone.base(input_ids=ids).last_hidden_state[0, -1]
    assert torch.allclose(pooled[1], by_hand, atol=1e-5)
    # mean pooling over the text only: an empty text falls back to its prompt's tokens
    mean = make(tiny_backbones, "llama", prompt="prompteol", pooling="mean", exclude_prompt=True)
    vector = mean.pool([""], [mean.spec], strict=False)[mean.spec]
    with torch.inference_mode():
        assert torch.allclose(vector[0], backbone.base(input_ids=ids).last_hidden_state[0].mean(0), atol=1e-5)


def test_lenient_pool_cuts_over_long_texts_and_counts_them(tiny_backbones):
    strict = make(tiny_backbones, "llama", prompt="prompteol", pooling="last", max_length=24)
    long_text = " ".join(["word"] * 60)
    with pytest.raises(InputError, match="truncation=True"):
        strict.encode([long_text])
    pooled = strict.pool([long_text, "short"], [strict.spec], strict=False)[strict.spec]
    assert strict.last_stats["truncated"] == 1
    cut = strict.replace(truncation=True)
    assert torch.allclose(pooled, cut.pool([long_text, "short"], [cut.spec])[cut.spec], atol=1e-6)


# ---------------------------------------------------------------------------------------------- sparse head
def test_the_logit_lens_norms_every_layer_below_the_final_one_in_an_averaged_set(tiny_backbones):
    embedder = make(tiny_backbones, "llama", prompt="none", pooling="last", layer=[2, 4])
    backbone = embedder.backbone
    per_layer = embedder.pool(["hello world"], embedder.lexical_specs())
    middle, final = (per_layer[PoolSpec("last", (layer,))] for layer in (2, 4))
    expected = backbone.lm_head()((backbone.final_norm()(middle) + final) / 2)  # the final state is normed already
    matrix = embedder.sparse(per_layer, top_k=8)
    values, ids = torch.log1p(torch.relu(expected[0])).topk(8)
    assert set(matrix.indices.tolist()) == set(ids[values > 0].tolist())
    assert np.allclose(sorted(matrix.data), sorted(values[values > 0].tolist()), atol=1e-5)


def test_lm_head_rows_past_the_tokenizer_get_no_weight(decoder_tokenizer):
    """A model whose embedding matrix is padded past the tokenizer (Qwen, Gemma do this) gives no ``None`` keys."""
    from transformers import AutoModelForCausalLM

    from .conftest import _tiny_config

    config = _tiny_config("llama", len(decoder_tokenizer) + 64)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        model.lm_head.weight[len(decoder_tokenizer) :] *= 50  # padding rows that would win the top-k
    embedder = Embedder(Backbone.wrap(model, decoder_tokenizer), Recipe(prompt="none", pooling="last"))
    matrix = embedder.encode_sparse(SENTENCES[:2], top_k=32)
    assert matrix.shape[1] == len(decoder_tokenizer) + 64 and matrix.indices.max() < len(decoder_tokenizer)
    words = embedder.encode_sparse(SENTENCES[:2], top_k=32, output="dict")
    assert all(isinstance(token, str) for row in words for token in row)


# ---------------------------------------------------------------------------------------------- compile
def test_final_layer_passes_run_the_compiled_model_and_others_run_eagerly(tiny_model_dirs):
    """A spy stands in for ``torch.compile``'s module (compiling for real takes minutes; the benchmark does it)."""
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    calls = []

    def compiled(**kwargs):
        calls.append(kwargs["input_ids"].shape)
        return backbone.base(**kwargs)

    backbone.compiled = compiled
    final = Embedder(backbone, Recipe(prompt="none", pooling="mean"))
    eager = final.encode(SENTENCES)
    assert len(calls) == 1  # one batch, through the compiled module
    middle = final.replace(layer=2)
    middle.encode(SENTENCES)
    assert len(calls) == 1  # a middle layer needs hooks: eager
    backbone.compiled = None
    assert np.allclose(final.encode(SENTENCES), eager, atol=1e-6)


def test_weights_changed_after_compile_send_passes_back_to_eager(tiny_model_dirs, caplog):
    """The compiled graph holds the weights it froze: after a weight update it must not run any more."""
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    calls = []

    def compiled(**kwargs):
        calls.append(1)
        return backbone.base(**kwargs)

    backbone.compiled, backbone._compiled_for = compiled, backbone.weights_version()  # what compile() records
    embedder = Embedder(backbone, Recipe(prompt="none", pooling="mean"))
    embedder.encode(SENTENCES)
    assert len(calls) == 1
    with torch.no_grad():
        backbone.layers[0].mlp.up_proj.weight.mul_(2.0)  # an optimizer step's kind of in-place update
    updated = embedder.encode(SENTENCES)
    assert len(calls) == 1 and backbone.compiled is None  # eager, with the new weights
    assert "weights changed after compile()" in caplog.text
    assert np.allclose(updated, Embedder(backbone, Recipe(prompt="none", pooling="mean")).encode(SENTENCES))


def test_compile_refuses_an_int8_backbone(tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    backbone = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="int8")
    with pytest.raises(RecipeError, match="compile runs float passes: this backbone's layers are int8"):
        backbone.compile()
