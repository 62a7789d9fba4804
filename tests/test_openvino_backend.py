"""The OpenVINO backend: its vectors equal torch's on real sentences for every pooling, attention mode, padding side
and layer it claims; what it cannot express runs torch, exactly; int8 is calibrated on the prompt and gated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from llembed import Embedder, Recipe  # noqa: E402
from llembed.backbone import Backbone  # noqa: E402
from llembed.backends import choose, load_backbone  # noqa: E402
from llembed.errors import RecipeError  # noqa: E402
from llembed.model_sources import locate  # noqa: E402
from llembed.openvino_backend import OpenVINOBackbone  # noqa: E402
from tests.conftest import SENTENCES  # noqa: E402

TOLERANCE = 2e-4
"""Largest difference allowed between an fp32 graph's unit vectors and torch's (OpenVINO fuses and reorders
float32 sums; the tiny models' vectors differ by about 1e-6)."""


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "llembed-cache"))


def _pair(path, **fields):
    """The same recipe on torch and on an fp32 OpenVINO graph of the same weights."""
    reference = Backbone.load(locate(str(path)), dtype="float32")
    recipe = Recipe(dtype="float32", **fields)
    return Embedder(reference, recipe), Embedder(OpenVINOBackbone(reference, "float32"), recipe)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_graph_equals_torch_for_every_pooling(tiny_model_dirs, kind, bidirectional):
    torch_embedder, graph_embedder = _pair(tiny_model_dirs[kind], prompt="none", bidirectional=bidirectional)
    for pooling in ("last", "mean", "weighted_mean", "first", "max"):
        for padding_side in ("left", "right"):
            expected = torch_embedder.replace(pooling=pooling, padding_side=padding_side).encode(SENTENCES)
            got = graph_embedder.replace(pooling=pooling, padding_side=padding_side).encode(SENTENCES)
            assert np.abs(got - expected).max() < TOLERANCE, (pooling, padding_side)


@pytest.mark.parametrize("layer", [1, 2, -1])
def test_graph_cut_at_a_middle_layer_equals_torch(tiny_model_dirs, layer):
    torch_embedder, graph_embedder = _pair(tiny_model_dirs["llama"], prompt="prompteol", pooling="last", layer=layer)
    assert np.abs(graph_embedder.encode(SENTENCES) - torch_embedder.encode(SENTENCES)).max() < TOLERANCE
    cut = graph_embedder.backbone.graph(torch_embedder.loop.layer_ids[0], False)
    assert len(cut.outputs) == 1  # one hidden state comes back: the blocks above the layer are not in the graph


def test_a_batch_equals_its_singles(tiny_model_dirs):
    _, graph_embedder = _pair(tiny_model_dirs["qwen2"], prompt="prompteol", pooling="last")
    batch = graph_embedder.encode(SENTENCES)
    singles = np.stack([graph_embedder.encode(text) for text in SENTENCES])
    assert np.abs(batch - singles).max() < TOLERANCE


def test_what_no_graph_expresses_runs_torch_exactly(tiny_model_dirs):
    """Layer averages and Token Prepending's block hooks are torch's passes: equal to the last bit."""
    for fields in ({"layer": [1, 3], "pooling": "mean"}, {"prompt": "token_prepending", "pooling": "last"}):
        torch_embedder, graph_embedder = _pair(tiny_model_dirs["llama"], **fields)
        torch_embedder.prefix_cache = False  # a graph backend caches no prefix: the same passes, bit for bit
        np.testing.assert_array_equal(graph_embedder.encode(SENTENCES), torch_embedder.encode(SENTENCES))
        assert not graph_embedder.backbone.graphs


def test_changed_weights_send_passes_back_to_torch(tiny_model_dirs):
    torch_embedder, graph_embedder = _pair(tiny_model_dirs["llama"], prompt="none", pooling="mean")
    torch_embedder.prefix_cache = False
    graph_embedder.encode(SENTENCES)
    with torch.no_grad():
        torch_embedder.backbone.model.base_model.layers[0].mlp.down_proj.weight.mul_(2)
    np.testing.assert_array_equal(graph_embedder.encode(SENTENCES), torch_embedder.encode(SENTENCES))


def test_graphs_are_cached_on_disk(tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    _, graph_embedder = _pair(tiny_model_dirs["gpt2"], prompt="none", pooling="mean")
    first = graph_embedder.encode(SENTENCES)
    (folder,) = (tmp_path / "openvino").iterdir()
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["layer"] == 4 and meta["bidirectional"] is False
    monkeypatch.setattr(OpenVINOBackbone, "_export", lambda *args: pytest.fail("exported again"))
    _, again = _pair(tiny_model_dirs["gpt2"], prompt="none", pooling="mean")
    np.testing.assert_array_equal(again.encode(SENTENCES), first)


def test_int8_is_calibrated_on_the_prompt_and_gated(tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    reference = Backbone.load(locate(str(tiny_model_dirs["llama"])), dtype="float32")
    recipe = Recipe(dtype="float32", prompt="prompteol", pooling="last")
    expected = Embedder(reference, recipe).encode(SENTENCES)
    graph = OpenVINOBackbone(reference, "int8")
    embedder = Embedder(graph, recipe)
    assert "This sentence" in graph.calibration_key  # the loop handed over its PromptEOL template
    vectors = embedder.encode(SENTENCES)
    (folder,) = (tmp_path / "openvino").iterdir()
    gate = json.loads((folder / "meta.json").read_text())["gate_min_cosine"]
    assert 0.9 < gate <= 1.0
    assert (vectors * expected).sum(axis=1).min() > 0.9
    monkeypatch.setattr("llembed.openvino_backend.INT8_GATE", 1.01)
    with pytest.raises(RecipeError, match="misses the quality gate"):
        Embedder(OpenVINOBackbone(reference, "int8"), recipe).encode(SENTENCES)
    # under backend auto a missed gate is not an error: torch runs those passes
    fallback = Embedder(OpenVINOBackbone(reference, "int8", gate_miss="torch"), recipe)
    exact = Embedder(reference, recipe)
    exact.prefix_cache = False
    np.testing.assert_array_equal(fallback.encode(SENTENCES), exact.encode(SENTENCES))


def test_auto_measures_once_and_keeps_the_choice(tiny_model_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    source = locate(str(tiny_model_dirs["llama"]))
    recipe = Recipe(backend="auto", dtype="float32", pooling="mean")
    first = load_backbone(source, recipe)
    (record,) = (tmp_path / "backend-choice").iterdir()
    seconds = json.loads(record.read_text())["seconds"]
    assert set(seconds) == {"torch", "openvino"}  # no int8 candidate unless the dtype is left to auto
    best = min(seconds, key=seconds.get)
    assert isinstance(first, OpenVINOBackbone) == (best == "openvino")
    monkeypatch.setattr("llembed.backends._probe", lambda *args: pytest.fail("measured again"))
    reference = Backbone.load(source, dtype="float32")
    assert isinstance(choose(reference, recipe, lambda: reference), OpenVINOBackbone) == (best == "openvino")


def test_bad_uses_name_the_problem(tiny_backbones, monkeypatch):
    with pytest.raises(RecipeError, match="backend"):
        Recipe(backend="tensorrt")
    with pytest.raises(RecipeError, match="dtype"):
        OpenVINOBackbone(tiny_backbones["llama"], "binary")
    with pytest.raises(RecipeError, match="already a compiled graph"):
        OpenVINOBackbone(tiny_backbones["llama"], "float32").compile()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(ImportError, match=r"llembed\[openvino\]"):
        OpenVINOBackbone(tiny_backbones["llama"], "float32")


@pytest.mark.slow
def test_real_model_graph_equals_torch(default_embedder):
    """SmolLM2-135M with the tuned model's recipe (InstructEOL, last token): the fp32 graph's vectors equal
    torch's on real sentences; OpenVINO's default precision on this CPU stays within bf16's reach."""
    recipe = default_embedder.recipe
    graph = Embedder(OpenVINOBackbone(default_embedder.backbone, "float32"), recipe)
    expected = default_embedder.encode(SENTENCES)
    assert np.abs(graph.encode(SENTENCES) - expected).max() < 1e-3
    default = Embedder(OpenVINOBackbone(default_embedder.backbone, "auto"), recipe)
    assert (default.encode(SENTENCES) * expected).sum(axis=1).min() > 0.995
