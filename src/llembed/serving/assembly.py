"""What ``llembed serve`` serves, as plain data (:class:`AppSpec`), and the app built from it: once in-process,
or once in every Ray Serve replica (see :mod:`llembed.serving.ray_serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llembed.errors import InputError
from llembed.serving.settings import ServerSettings


@dataclass(frozen=True)
class AppSpec:
    model: str | None = None
    """Model folder, .gguf, alias or trained run (``None``: the default model)."""
    recipe: str | None = None
    """Recipe file; ``model`` overrides its model."""
    fields: tuple[tuple[str, Any], ...] = ()
    """Recipe fields that override the recipe's (``llembed serve --pooling mean``)."""
    name: str | None = None
    """The model's name in the API (default: the model folder's name)."""
    indexes: tuple[tuple[str, str], ...] = ()
    """(name, folder) of each index to serve."""
    indexes_only: bool = False
    """Serve no model of its own, only each index's embedder."""
    reranker: str | None = "auto"
    """Who answers ``/v1/rerank``: ``auto`` (the reranker shipped with llembed, ``DEFAULT_RERANKER``),
    ``self`` (each served causal LM with its own zero-shot yes/no), ``none``, or a model to load as the
    reranker."""
    demo: bool = False
    """Also serve the demo indexes (SciFact abstracts, built once per recipe and cached): ``demo`` for the served
    recipe and ``demo-<pooling>`` for a contrasting one, so the playground compares two recipes out of the box."""
    settings: ServerSettings = field(default_factory=ServerSettings)


def served_name(model: str | None, embedder) -> str:
    """The API's name for a model: the last part of what the user named (a run folder's name for a trained
    run, not its base model's), else the recipe's model."""
    return Path(str(model if model is not None else embedder.recipe.model)).name


def build_app(spec: AppSpec):
    """Load the model and indexes ``spec`` names and return the FastAPI app serving them."""
    from llembed.embedder import Embedder
    from llembed.index.build import recipe_hash
    from llembed.index.search import VectorIndex
    from llembed.serving.app import create_app

    models: dict[str, Embedder] = {}
    if not spec.indexes_only:
        embedder = Embedder.from_pretrained(spec.model, recipe=spec.recipe, **dict(spec.fields))
        models[spec.name or served_name(spec.model, embedder)] = embedder
    shared = next(iter(models.values()), None)
    indexes = {}
    if spec.demo:
        from llembed.index.demo import demo_indexes

        if shared is None:
            raise InputError("--demo indexes with the served model: drop --indexes-only")
        for name, (embedder, path) in demo_indexes(shared).items():
            indexes[name] = VectorIndex.load(path, embedder)
    for name, path in spec.indexes:
        # an index built with the served recipe shares its embedder; another recipe brings its own
        same = shared is not None and VectorIndex.read_manifest(path).get("recipe_hash") == recipe_hash(shared)
        indexes[name] = VectorIndex.load(path, shared if same else None)
    rerankers = {}
    choice = reranker_choice(spec.reranker)
    if choice not in ("self", "none"):
        from llembed.reranker import Reranker

        reranker = Reranker.from_pretrained(choice, truncation=True)
        rerankers[served_name(choice, reranker)] = reranker
    return create_app(models, indexes, spec.settings, rerankers, self_rerank=choice == "self")


def reranker_choice(reranker: str | None) -> str:
    """``AppSpec.reranker`` resolved: ``auto`` is the shipped reranker while one is installed, else the
    served models' own answer (``self``); ``None`` is ``none``."""
    from llembed.model_sources import default_reranker

    if reranker is None or reranker == "none":
        return "none"
    if reranker == "auto":
        return default_reranker() or "self"
    return reranker
