"""dtype="int8": the smoothed int8 linear layer against a hand computation, rows independent of their batch,
calibration cached per model, and tiny decoders of three architectures close to float32."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from llembed import Embedder
from llembed.backbone import Backbone
from llembed.errors import RecipeError
from llembed.model_sources import locate
from llembed.quantization import (
    Int8Linear,
    SharedInput,
    calibration_texts,
    int8_weight_limit,
    quantize,
    sharing_groups,
)

from .conftest import SENTENCES, TINY_KINDS


def test_int8_linear_equals_the_hand_computation():
    torch.manual_seed(0)
    linear = nn.Linear(8, 4)
    x = torch.randn(3, 8) * torch.tensor([1.0, 30.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0])  # channel 1 is an outlier
    input_range = x.abs().amax(dim=0)
    layer = Int8Linear.alone(linear, input_range, alpha=0.5, outlier_fraction=1 / 8)  # 1 of 8 channels in float

    w = linear.weight.detach().numpy().T.astype(np.float64)  # (in, out)
    xs = x.numpy().astype(np.float64)
    smooth = np.sqrt(np.maximum(input_range.numpy(), 1e-5)) / np.sqrt(np.abs(w).max(axis=1))
    w_smoothed = w * smooth[:, None]
    w_smoothed[1] = 0.0  # the outlier channel leaves the int8 part…
    limit = int8_weight_limit()  # 127, or 63 where the CPU's int8 product would saturate
    w_scale = np.abs(w_smoothed).max(axis=0) / limit
    w_int = np.round(w_smoothed / w_scale)
    rows = xs / smooth
    rows[:, 1] = 0.0
    row_scale = np.abs(rows).max(axis=1, keepdims=True) / 127
    x_int = np.round(rows / row_scale)
    outlier = xs[:, [1]] @ w[[1]]  # …and is multiplied in float, unsmoothed
    expected = (x_int @ w_int) * row_scale * w_scale + outlier + linear.bias.detach().numpy()

    assert layer.shared.outlier_index.tolist() == [1]
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(w_int).max() == limit and layer.weight_int8.dtype == torch.int8
    np.testing.assert_allclose(layer(x).numpy(), linear(x).detach().numpy(), atol=0.05)  # and close to float


def test_float_outlier_channels_cut_the_error():
    torch.manual_seed(3)
    linear = nn.Linear(64, 32)
    x = torch.randn(50, 64)
    x[:, :2] *= 200.0  # two channels far outside the rest, as a gated MLP activation has
    input_range = x.abs().amax(dim=0)
    exact = linear(x).detach()
    errors = [
        (Int8Linear.alone(linear, input_range, outlier_fraction=f)(x) - exact).abs().mean().item() for f in (0, 1 / 32)
    ]
    assert errors[1] < errors[0] / 5, errors


def test_a_row_gives_the_same_output_alone_as_in_any_batch():
    torch.manual_seed(1)
    layer = Int8Linear.alone(nn.Linear(16, 8), torch.rand(16) * 10, outlier_fraction=1 / 8)
    batch = torch.randn(5, 7, 16) * 3
    whole = layer(batch)
    for row in range(5):
        assert torch.equal(layer(batch[row : row + 1]), whole[row : row + 1])  # bit for bit


def test_projections_fed_one_tensor_quantize_it_once(monkeypatch):
    torch.manual_seed(2)
    block = nn.Module()
    block.q, block.k, block.v, block.o = (nn.Linear(16, n) for n in (16, 8, 8, 16))
    blocks = nn.ModuleList([block])
    x, other = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    same, own = x.abs().amax(dim=(0, 1)), other.abs().amax(dim=(0, 1))
    ranges = {"0.q": same, "0.k": same.clone(), "0.v": same.clone(), "0.o": own}
    assert sharing_groups(list(ranges), ranges) == [["0.q", "0.k", "0.v"], ["0.o"]]
    float_out = [m(x).detach() for m in (block.q, block.k, block.v)]
    quantize(blocks, ranges, outlier_fraction=1 / 16)
    assert block.q.shared is block.k.shared is block.v.shared and block.o.shared is not block.q.shared

    calls = []
    original = SharedInput._quantize
    monkeypatch.setattr(SharedInput, "_quantize", lambda self, t: calls.append(t) or original(self, t))
    shared_out = [block.q(x), block.k(x), block.v(x)]
    assert len(calls) == 1  # one quantization for the three projections
    assert block.q.shared._input is None  # released once all three have read it
    for got, want in zip(shared_out, float_out, strict=True):
        assert (got - want).abs().max() < 0.05
    # a member handed another tensor quantizes that one: same result as a fresh pass, not the cached one
    block.q(x)  # quantizes x again (released above)
    assert torch.equal(block.k(other), block.k(other)) and len(calls) == 3  # other: once, then from the cache
    assert not torch.allclose(block.k(other), shared_out[1])


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


@pytest.mark.parametrize(("isa", "limit"), [("AVX2", 63), ("AVX512_CORE", 63), ("ALL", None)])
def test_weights_stay_where_the_cpus_int8_product_is_exact(isa, limit):
    """Without VNNI, oneDNN adds pairs of uint8·int8 products in int16: full-range weights would saturate."""
    import subprocess
    import sys

    probe = (
        "import torch\n"
        "from llembed.quantization import int8_weight_limit\n"
        "limit = int8_weight_limit()\n"
        "a = torch.full((32, 256), 127, dtype=torch.int8)\n"
        "w = torch.full((256, 16), limit, dtype=torch.int8)\n"
        "print(limit, torch.equal(torch._int_mm(a, w).double(), a.double() @ w.double()))"
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    found, exact = out.stdout.split()
    assert exact == "True"  # at the chosen limit the product is exact
    if limit is not None:
        assert int(found) == limit
    else:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        vnni = any(f in flags for f in (" avx512_vnni", " avx_vnni", " amx_int8"))
        assert int(found) == (127 if vnni else 63)
