"""GradCache gives the gradients of one plain backward over the whole batch."""

import pytest
import torch

from llembed import Embedder
from llembed.training.adapters import add_lora, trainable_parameters
from llembed.training.gradcache import contrastive_backward
from llembed.training.losses import InfoNCELoss


def _lora_embedder(path, dropout):
    torch.manual_seed(0)
    embedder = Embedder.from_pretrained(str(path), prompt="prompteol", pooling="mean", dtype="float32")
    add_lora(embedder.backbone.model, r=4, alpha=8, dropout=dropout, target_modules="all-linear")
    with torch.no_grad():  # LoRA's B starts at zero; make the adapters matter for the gradient
        for name, parameter in trainable_parameters(embedder.backbone.model):
            if "lora_B" in name:
                parameter.normal_(std=0.02)
    embedder.backbone.model.train()
    return embedder


def _groups(pairs):
    return {
        "queries": [f"query number {i} about topic {i % 7}" for i in range(pairs)],
        "positives": [f"a passage on topic {i % 7}, item {i}" for i in range(pairs)],
        "negatives": [f"unrelated text {i}" for i in range(pairs // 2)],
    }


def _gradients(embedder, groups, chunk_size):
    model = embedder.backbone.model
    model.zero_grad(set_to_none=True)
    encoders = {name: (lambda texts: embedder.forward(texts)) for name in groups}
    loss_fn = InfoNCELoss(0.05)
    loss = contrastive_backward(
        groups, encoders, lambda r: loss_fn(r["queries"], r["positives"], r["negatives"]), chunk_size
    )
    return loss, {name: p.grad.clone() for name, p in trainable_parameters(model)}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_gradcache_equals_plain_backward_on_256_pairs(tiny_model_dirs, kind):
    embedder = _lora_embedder(tiny_model_dirs[kind], dropout=0.0)
    embedder.backbone.model.eval()  # GPT-2's own dropout off too: a deterministic function, gradients still flow
    groups = _groups(256)
    plain_loss, plain = _gradients(embedder, groups, chunk_size=None)
    cached_loss, cached = _gradients(embedder, groups, chunk_size=32)
    assert cached_loss == pytest.approx(plain_loss, abs=1e-5)
    assert any(g.abs().max() > 0 for g in plain.values())
    _assert_same(plain, cached)


def test_gradcache_replays_dropout_exactly(tiny_model_dirs):
    """With dropout on, the re-encoding must see the same masks as the first, cached pass."""
    embedder = _lora_embedder(tiny_model_dirs["llama"], dropout=0.3)
    groups = _groups(12)
    chunk = 4

    # reference: the same chunks in the same order, with a graph, one backward over the loss
    torch.manual_seed(5)
    model = embedder.backbone.model
    model.zero_grad(set_to_none=True)
    reps = {
        n: torch.cat([embedder.forward(t[i : i + chunk]) for i in range(0, len(t), chunk)]) for n, t in groups.items()
    }
    InfoNCELoss(0.05)(reps["queries"], reps["positives"], reps["negatives"]).backward()
    reference = {name: p.grad.clone() for name, p in trainable_parameters(model)}

    torch.manual_seed(5)
    _, cached = _gradients(embedder, groups, chunk_size=chunk)
    _assert_same(reference, cached)

    torch.manual_seed(6)  # other masks → other gradients: dropout really is on
    _, other = _gradients(embedder, groups, chunk_size=chunk)
    assert any(not torch.allclose(reference[n], other[n], atol=1e-6) for n in reference)


def test_gradcache_equals_plain_backward_for_token_vectors(tiny_model_dirs):
    """Late interaction: texts as padded token vectors (one width for every chunk), MaxSim InfoNCE."""
    from llembed.training.losses import LateInteractionLoss

    embedder = _lora_embedder(tiny_model_dirs["llama"], dropout=0.0).replace(exclude_prompt=True)
    embedder.backbone.model.eval()
    groups = _groups(24)
    loss_fn = LateInteractionLoss(0.05)

    def gradients(chunk_size):
        model = embedder.backbone.model
        model.zero_grad(set_to_none=True)
        encoders = {name: (lambda texts: embedder.forward_tokens(texts, width=16)) for name in groups}
        loss = contrastive_backward(
            groups, encoders, lambda r: loss_fn(r["queries"], r["positives"], r["negatives"]), chunk_size
        )
        return loss, {name: p.grad.clone() for name, p in trainable_parameters(model)}

    plain_loss, plain = gradients(None)
    cached_loss, cached = gradients(8)
    assert cached_loss == pytest.approx(plain_loss, abs=1e-5)
    assert any(g.abs().max() > 0 for g in plain.values())
    _assert_same(plain, cached)
