"""Layer capture, early exit and bidirectional attention on tiny random decoders."""

import pytest
import torch

from llembed.prompts import PromptTemplate
from llembed.tokenization import PromptTokenizer, collate

from .conftest import TINY_KINDS


def _batch(backbone, texts, side="right"):
    tokenizer = PromptTokenizer(backbone.tokenizer, max_length=128)
    items = tokenizer.tokenize([PromptTemplate("{text}").render(t) for t in texts])
    return collate(items, backbone.tokenizer.pad_token_id, side)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("kind", TINY_KINDS)
def test_layer_choice_returns_that_layers_states(tiny_backbones, kind, side):
    backbone = tiny_backbones[kind]
    batch = _batch(backbone, ["a small test sentence", "another one"], side)
    reference = backbone.base(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        output_hidden_states=True,
    ).hidden_states
    layers = list(range(backbone.num_layers + 1))
    states = backbone.hidden_states(batch, layers)
    # every real token's state; a right-padded batch runs without a mask (see Backbone._run_locked), so only the
    # padding positions, which no pooling reads, may differ from the masked reference
    real = batch.attention_mask.bool()
    for layer in layers:
        assert torch.allclose(states[layer][real], reference[layer][real], atol=1e-5), f"layer {layer}"


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_layers_above_the_pooled_one_are_not_computed(tiny_backbones, kind):
    backbone = tiny_backbones[kind]
    calls = []
    handles = [
        block.register_forward_pre_hook(lambda _m, _a, i=i: calls.append(i)) for i, block in enumerate(backbone.layers)
    ]
    try:
        backbone.hidden_states(_batch(backbone, ["early exit"]), [2])
        assert calls == [0, 1]
        calls.clear()
        backbone.hidden_states(_batch(backbone, ["embeddings only"]), [0])
        assert calls == [0]  # the first block is entered (its input is captured) but stopped at once
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_bidirectional_attention_lets_early_tokens_see_later_ones(tiny_backbones, kind):
    backbone = tiny_backbones[kind]
    a = _batch(backbone, ["the cat sat on the mat"])
    b = _batch(backbone, ["the cat sat on the rug"])
    assert a.input_ids.shape == b.input_ids.shape and (a.input_ids[0, :-1] == b.input_ids[0, :-1]).all()
    last = backbone.num_layers
    causal_a, causal_b = backbone.hidden_states(a, [last])[last], backbone.hidden_states(b, [last])[last]
    bidir_a = backbone.hidden_states(a, [last], bidirectional=True)[last]
    bidir_b = backbone.hidden_states(b, [last], bidirectional=True)[last]
    # causal: the first token's state ignores the changed last token; bidirectional: it depends on it
    assert torch.allclose(causal_a[0, 0], causal_b[0, 0], atol=1e-6)
    assert not torch.allclose(bidir_a[0, 0], bidir_b[0, 0], atol=1e-4)
    # and the switch is undone afterwards
    assert torch.allclose(backbone.hidden_states(a, [last])[last], causal_a)
    assert getattr(backbone.model.config, "is_causal", True)


def test_bidirectional_batches_equal_singles_under_padding(tiny_backbones):
    backbone = tiny_backbones["llama"]
    texts = ["a short one", "a considerably longer sentence with more tokens in it"]
    for side in ("left", "right"):
        batch = _batch(backbone, texts, side)
        states = backbone.hidden_states(batch, [backbone.num_layers], bidirectional=True)[backbone.num_layers]
        for row, text in enumerate(texts):
            single = _batch(backbone, [text])
            alone = backbone.hidden_states(single, [backbone.num_layers], bidirectional=True)[backbone.num_layers][0]
            real = batch.attention_mask[row].bool()
            assert torch.allclose(states[row][real], alone, atol=1e-5)


def test_token_prepending_overwrites_the_placeholder_in_chosen_layers(tiny_backbones):
    from llembed.prompts import STRATEGIES
    from llembed.recipe import Recipe

    backbone = tiny_backbones["llama"]
    tokenizer = PromptTokenizer(backbone.tokenizer, max_length=128, placeholder_id=0)
    items = tokenizer.tokenize([STRATEGIES["token_prepending"].query_templates[0].render("a cat")])
    batch = collate(items, backbone.tokenizer.pad_token_id, "right")
    seen = {}

    def spy(index):
        def hook(_module, args, kwargs, _output):  # forward hooks see the inputs as the block got them
            hidden = args[0] if args else kwargs["hidden_states"]
            seen[index] = hidden[0].clone()

        return hook

    handles = [block.register_forward_hook(spy(i), with_kwargs=True) for i, block in enumerate(backbone.layers)]
    try:
        hooks = STRATEGIES["token_prepending"].block_hooks(
            Recipe(tp_layers=[1, 3]), STRATEGIES["token_prepending"].query_templates[0], batch, 0, backbone.num_layers
        )
        backbone.hidden_states(batch, [backbone.num_layers], block_hooks=hooks)
    finally:
        for handle in handles:
            handle.remove()
    pst, last = int(batch.pst_index[0]), int(batch.last_index[0])
    assert not torch.allclose(seen[0][pst], seen[0][last])  # block 0 sees the placeholder's own embedding
    for index in (1, 2):
        assert torch.allclose(seen[index][pst], seen[index][last])
    assert not torch.allclose(seen[3][pst], seen[3][last])


def test_dtype_auto_follows_native_bf16(monkeypatch):
    from llembed import backbone as backbone_module

    backbone_module.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(backbone_module, "cpu_has_native_bf16", lambda: True)
    assert backbone_module.resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    monkeypatch.setattr(backbone_module, "cpu_has_native_bf16", lambda: False)
    assert backbone_module.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert backbone_module.resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert backbone_module.resolve_dtype("float16", torch.device("cpu")) == torch.float16


@pytest.mark.parametrize("isa", ["AVX2", "avx512_core_vnni"])
def test_a_onednn_cap_below_bf16_means_no_native_bf16(monkeypatch, isa):
    from llembed import backbone as backbone_module

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    backbone_module.cpu_has_native_bf16.cache_clear()
    try:
        assert backbone_module.cpu_has_native_bf16() is False
        assert backbone_module.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    finally:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        backbone_module.cpu_has_native_bf16.cache_clear()
