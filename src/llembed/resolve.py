"""One door for "what is this model?": every command, the server, Ray workers and the Python API resolve a
``model`` (and optional recipe) here, so they all agree.

``model`` may be
- ``None``: the bundled default (SmolLM2-135M-Instruct);
- an alias of a bundled model (``smollm2-135m``, ``all-minilm-l6-v2``) or of a tuned model shipped with llembed
  (``smollm2-135m-tuned``: a bundled model, an adapter and the recipe it was trained with);
- a local Hugging Face folder (causal LM, or an encoder / sentence-transformers folder), or a ``.gguf`` file;
- a model id already in the local Hugging Face cache;
- a ``llembed train`` run folder (its ``recipe.yaml`` names the base model and the adapter);
- a recipe file (``.yaml`` / ``.yml`` / ``.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llembed.errors import RecipeError
from llembed.model_sources import BUNDLED_MODELS, DEFAULT_MODEL, TUNED_MODELS, ModelSource, locate, tuned_model_folder
from llembed.pooling import FROM_ST_POOLING
from llembed.recipe import Recipe

RECIPE_SUFFIXES = (".yaml", ".yml", ".json")
RUN_RECIPE = "recipe.yaml"


@dataclass(frozen=True)
class Resolved:
    recipe: Recipe
    """The requested recipe, its ``model`` named (local paths absolute, so workers elsewhere find them)."""
    source: ModelSource
    defaults: dict[str, Any] = field(default_factory=dict)
    """Recipe defaults the model's folder declares (a sentence-transformers folder's pooling, length, norm)."""


def is_trained_output(path: str | os.PathLike) -> bool:
    """A ``llembed train`` output folder: a recipe beside an adapter or model, no config.json of its own."""
    path = Path(path)
    return path.is_dir() and (path / RUN_RECIPE).is_file() and not (path / "config.json").is_file()


def resolve_recipe(
    model: str | os.PathLike | None = None, recipe: Recipe | str | os.PathLike | None = None, **overrides: Any
) -> Recipe:
    """The recipe that ``model`` + ``recipe`` + field ``overrides`` name, without touching the model's files."""
    base = recipe if isinstance(recipe, Recipe) else Recipe.load(recipe) if recipe is not None else None
    if model is not None and str(model).lower() in TUNED_MODELS:
        model = tuned_model_folder(str(model))  # a run folder inside the package: recipe + adapter
    if model is not None and (_is_recipe_file(model) or is_trained_output(model)):
        if base is not None:
            raise RecipeError(f"{model} carries its own recipe: pass it as the model or give --recipe, not both")
        base = Recipe.load(Path(model) / RUN_RECIPE if Path(model).is_dir() else model)
        model = None
    base = base or Recipe()
    if model is not None or base.model is None:  # named as the loaded embedder names it, so hashes agree
        base = base.replace(model=DEFAULT_MODEL if model is None else str(model))
    if overrides:
        base = base.replace(**overrides)
    return base.replace(**_absolute_paths(base))


def resolve(
    model: str | os.PathLike | None = None, recipe: Recipe | str | os.PathLike | None = None, **overrides: Any
) -> Resolved:
    """The recipe and where its model's files are; a missing model fails at once (llembed never downloads)."""
    requested = resolve_recipe(model, recipe, **overrides)
    source = locate(requested.model)
    return Resolved(requested, source, sentence_transformers_defaults(source.path))


def _is_recipe_file(model: str | os.PathLike) -> bool:
    path = Path(model)
    return path.suffix.lower() in RECIPE_SUFFIXES and path.is_file()


def _absolute_paths(recipe: Recipe) -> dict[str, str]:
    changes = {}
    for key in ("model", "adapter"):
        value = getattr(recipe, key)
        if value is None or (key == "model" and str(value).lower() in BUNDLED_MODELS):
            continue
        path = Path(str(value)).expanduser()
        if path.exists() and str(path.resolve()) != value:
            changes[key] = str(path.resolve())
    return changes


def sentence_transformers_defaults(folder: Path) -> dict[str, Any]:
    """Pooling, max length and normalisation a sentence-transformers folder declares (empty if it isn't one)."""
    modules_file = Path(folder) / "modules.json"
    if not modules_file.is_file():
        return {}
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{modules_file}: not a readable sentence-transformers modules.json ({exc})") from exc
    defaults: dict[str, Any] = {"normalize": any(m.get("type", "").endswith("Normalize") for m in modules)}
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            mode = _st_pooling_mode(Path(folder) / module["path"] / "config.json")
            if mode in FROM_ST_POOLING:
                defaults["pooling"] = FROM_ST_POOLING[mode]
    bert_config = Path(folder) / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = json.loads(bert_config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(max_length, int):
            defaults["max_length"] = max_length
    return defaults


# sentence-transformers' older pooling configs: one boolean per mode
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def _st_pooling_mode(config_file: Path) -> str:
    config = json.loads(config_file.read_text(encoding="utf-8"))
    mode = config.get("pooling_mode")
    if mode is None:
        mode = next((m for key, m in _LEGACY_POOLING_KEYS.items() if config.get(key)), "mean")
    return mode[0] if isinstance(mode, list | tuple) else mode
