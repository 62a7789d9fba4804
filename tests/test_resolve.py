"""One resolver for every way of naming a model: aliases, folders, .gguf files, train runs, recipe files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from llembed import Embedder, Recipe, model_sources
from llembed.errors import RecipeError
from llembed.resolve import is_trained_output, resolve, resolve_recipe, sentence_transformers_defaults

from .conftest import SENTENCES


def test_a_trained_run_resolves_to_its_recipe_with_absolute_paths(trained_run, tiny_model_dirs):
    assert is_trained_output(trained_run)
    recipe = resolve_recipe(trained_run)
    assert recipe.model == str(tiny_model_dirs["llama"].resolve())
    # the run writes its adapter path relative to itself; resolved, it is absolute (workers may run elsewhere)
    assert recipe.adapter == str((trained_run / "adapter").resolve())
    assert (trained_run / "adapter" / "adapter_config.json").is_file()
    # flags still override the run's recipe; a second recipe is refused
    assert resolve_recipe(trained_run, pooling="last").pooling == "last"
    with pytest.raises(RecipeError, match="carries its own recipe"):
        resolve_recipe(trained_run, recipe=Recipe())


def test_a_trained_run_loads_as_model_and_differs_from_its_base(trained_run, tiny_model_dirs):
    tuned = Embedder.from_pretrained(str(trained_run))
    by_file = Embedder.from_pretrained(str(trained_run / "recipe.yaml"))
    base = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), prompt="none", pooling="mean", dtype="float32")
    assert np.allclose(tuned.encode(SENTENCES), by_file.encode(SENTENCES), atol=1e-6)
    assert not np.allclose(tuned.encode(SENTENCES), base.encode(SENTENCES), atol=1e-3)  # the adapter is merged


def test_resolve_names_the_default_and_reads_an_st_folder(tmp_path):
    default = resolve(None)
    assert default.recipe.model == "smollm2-135m" and default.source.gguf_file is not None
    minilm = resolve("all-minilm-l6-v2")
    assert minilm.defaults == {"normalize": True, "pooling": "mean", "max_length": 256}


def test_a_sentence_transformers_folder_without_normalize_is_read_as_such(tmp_path):
    """The normalisation of a sentence-transformers folder comes from its modules (issue: it was never read)."""
    folder = tmp_path / "minilm-raw"
    shutil.copytree(resolve("all-minilm-l6-v2").source.path, folder)
    modules = [m for m in json.loads((folder / "modules.json").read_text()) if not m["type"].endswith("Normalize")]
    (folder / "modules.json").write_text(json.dumps(modules))
    assert sentence_transformers_defaults(folder)["normalize"] is False
    raw = Embedder.from_pretrained(str(folder), dtype="float32")
    assert raw.recipe.normalize is False
    vectors = raw.encode(SENTENCES[:2])
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu").encode(SENTENCES[:2])
    assert np.abs(vectors - reference).max() < 1e-4


@pytest.mark.parametrize("alias", sorted(model_sources.TUNED_MODELS))
def test_every_tuned_alias_ships_a_complete_run_on_a_bundled_base(alias):
    folder = model_sources.tuned_model_folder(alias)
    recipe = resolve_recipe(alias)
    assert (folder / "README.md").read_text(encoding="utf-8").startswith(f"# {alias}\n")  # its model card
    if recipe.adapter is None:  # an untrained alias (the likelihood reranker): a recipe over bundled weights
        assert recipe.model in model_sources.BUNDLED_MODELS and not (folder / "adapter").exists()
        return
    assert recipe.model in model_sources.BUNDLED_MODELS and recipe.adapter == str((folder / "adapter").resolve())
    config = json.loads((folder / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA" and (folder / "adapter" / "adapter_model.safetensors").is_file()
    if recipe.model.startswith("gemma"):  # a Model Derivative of Gemma carries the terms and the notice they ask for
        assert "Gemma Terms of Use" in (folder / "NOTICE").read_text(encoding="utf-8")
        assert "Gemma Terms of Use" in (folder / "GEMMA_TERMS.html").read_text(encoding="utf-8")


def test_the_tuned_alias_is_the_shipped_run_folder(monkeypatch, tmp_path):
    from llembed.errors import ModelNotFoundError

    folder = model_sources.TUNED_DIR / "smollm2-135m-tuned"
    recipe = resolve_recipe("smollm2-135m-tuned")
    assert recipe == resolve_recipe(folder)  # exactly what the run folder resolves to
    assert recipe.model == "smollm2-135m" and recipe.adapter == str((folder / "adapter").resolve())
    assert (recipe.prompt, recipe.pooling, recipe.truncation) == ("instructeol", "last", True)
    assert resolve_recipe("SmolLM2-135M-Tuned", pooling="mean").pooling == "mean"  # fields still override
    monkeypatch.setattr(model_sources, "TUNED_DIR", tmp_path)  # an install that lost the adapter says so
    with pytest.raises(ModelNotFoundError, match="smollm2-135m-tuned.*incomplete; reinstall llembed"):
        resolve_recipe("smollm2-135m-tuned")
