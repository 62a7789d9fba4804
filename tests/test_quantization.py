"""dtype="int8": the smoothed int8 linear layer against a hand computation, rows independent of their batch,
calibration cached per model, and tiny decoders of three architectures close to float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from llembed import Embedder
from llembed.backbone import Backbone
from llembed.errors import RecipeError
from llembed.model_sources import locate
from llembed.quantization import Int8Linear, calibration_texts

from .conftest import SENTENCES, TINY_KINDS


def test_int8_linear_equals_the_hand_computation():
    torch.manual_seed(0)
    linear = nn.Linear(6, 4)
    x = torch.randn(3, 6) * torch.tensor([1.0, 30.0, 1.0, 1.0, 0.5, 1.0])  # channel 1 is an outlier
    input_range = x.abs().amax(dim=0)
    layer = Int8Linear(linear, input_range, alpha=0.5)

    w = linear.weight.detach().numpy().T.astype(np.float64)  # (in, out)
    xs = x.numpy().astype(np.float64)
    smooth = np.sqrt(np.maximum(input_range.numpy(), 1e-5)) / np.sqrt(np.abs(w).max(axis=1))
    w_smoothed = w * smooth[:, None]
    w_scale = np.abs(w_smoothed).max(axis=0) / 127
    w_int = np.round(w_smoothed / w_scale)
    rows = xs / smooth
    row_scale = np.abs(rows).max(axis=1, keepdims=True) / 127
    x_int = np.round(rows / row_scale)
    expected = (x_int @ w_int) * row_scale * w_scale + linear.bias.detach().numpy()

    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(w_int).max() == 127 and layer.weight_int8.dtype == torch.int8
    np.testing.assert_allclose(layer(x).numpy(), linear(x).detach().numpy(), atol=0.05)  # and close to float


def test_a_row_gives_the_same_output_alone_as_in_any_batch():
    torch.manual_seed(1)
    layer = Int8Linear(nn.Linear(16, 8), torch.rand(16) * 10)
    batch = torch.randn(5, 7, 16) * 3
    whole = layer(batch)
    for row in range(5):
        assert torch.equal(layer(batch[row : row + 1]), whole[row : row + 1])  # bit for bit


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_int8_embeddings_stay_close_to_float32_and_batches_equal_singles(kind, tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    source = locate(str(tiny_model_dirs[kind]))
    reference = Embedder(Backbone.load(source, dtype="float32"), None, {"pooling": "mean"})
    quantized = Embedder(Backbone.load(source, dtype="int8"), None, {"pooling": "mean"})
    assert quantized.backbone.dtype_name == "int8" and "dtype=int8" in repr(quantized)
    assert any(isinstance(m, Int8Linear) for m in quantized.backbone.model.modules())
    a = reference.encode(SENTENCES, normalize=True, show_progress_bar=False)
    b = quantized.encode(SENTENCES, normalize=True, show_progress_bar=False)
    assert (a * b).sum(axis=1).min() > 0.99
    for side in ("right", "left"):
        padded = quantized.replace(padding_side=side)
        batch = padded.encode(SENTENCES, normalize=True, show_progress_bar=False)
        singles = np.stack([padded.encode([t], normalize=True, show_progress_bar=False)[0] for t in SENTENCES])
        # a flipped rounding from a 1e-7 difference upstream can move a vector by about one int8 step
        assert (batch * singles).sum(axis=1).min() > 0.9995


def test_calibration_is_cached_per_model(tiny_model_dirs, tmp_path, monkeypatch):
    import llembed.quantization as quantization

    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    source = locate(str(tiny_model_dirs["llama"]))
    Backbone.load(source, dtype="int8")
    (cached,) = (tmp_path / "int8").iterdir()
    monkeypatch.setattr(quantization, "calibrate", lambda *a, **k: pytest.fail("calibrated twice"))
    again = Backbone.load(source, dtype="int8")
    assert again.quantization == "int8" and len(list((tmp_path / "int8").iterdir())) == 1
    assert cached.suffix == ".safetensors" and len(calibration_texts()) == 256


def test_int8_bad_inputs_are_named(tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    bf16 = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="bfloat16")
    with pytest.raises(RecipeError, match="int8 quantizes float32 weights, not bfloat16"):
        bf16.quantize_int8()
    llama = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="int8")
    scales = next((tmp_path / "int8").iterdir())
    gpt2 = Backbone.load(locate(str(tiny_model_dirs["gpt2"])), dtype="float32")
    with pytest.raises(RecipeError, match="int8 scales do not fit this model"):
        gpt2.quantize_int8(scales)
    assert llama.quantization == "int8"
    with pytest.raises(RecipeError, match="dtype int8 is the CPU path"):
        Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="int8", device="meta")
