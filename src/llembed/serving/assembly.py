"""What ``llembed serve`` serves, as plain data (:class:`AppSpec`), and the app built from it: once in-process,
or once in every Ray Serve replica (see :mod:`llembed.serving.ray_serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llembed.serving.settings import ServerSettings


@dataclass(frozen=True)
class AppSpec:
    model: str | None = None
    """Model folder, .gguf, alias or trained run (``None``: the default model)."""
    recipe: str | None = None
    """Recipe file; ``model`` overrides its model."""
    name: str | None = None
    """The model's name in the API (default: the model folder's name)."""
    indexes: tuple[tuple[str, str], ...] = ()
    """(name, folder) of each index to serve."""
    indexes_only: bool = False
    """Serve no model of its own, only each index's embedder."""
    settings: ServerSettings = field(default_factory=ServerSettings)


def build_app(spec: AppSpec):
    """Load the model and indexes ``spec`` names and return the FastAPI app serving them."""
    from llembed.embedder import Embedder
    from llembed.index.build import recipe_hash
    from llembed.index.search import VectorIndex
    from llembed.recipe import Recipe
    from llembed.serving.app import create_app

    models: dict[str, Embedder] = {}
    if not spec.indexes_only:
        recipe = Recipe.load(spec.recipe) if spec.recipe else Recipe()
        embedder = Embedder.from_recipe(recipe.replace(model=spec.model) if spec.model else recipe)
        models[spec.name or Path(str(embedder.recipe.model)).name] = embedder
    shared = next(iter(models.values()), None)
    indexes = {}
    for name, path in spec.indexes:
        # an index built with the served recipe shares its embedder; another recipe brings its own
        same = shared is not None and VectorIndex.read_manifest(path).get("recipe_hash") == recipe_hash(shared)
        indexes[name] = VectorIndex.load(path, shared if same else None)
    return create_app(models, indexes, spec.settings)
