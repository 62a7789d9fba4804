"""What is served: ``/v1/models`` (embedding models and rerankers, and which reranker answers by default) and
``/v1/indexes``."""

from __future__ import annotations

from fastapi import APIRouter, Request

from llembed.embedder import Embedder
from llembed.serving.server import Server, authorized

router = APIRouter()


@router.get("/v1/models")
def list_models(request: Request) -> dict:
    server = authorized(request)
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "owned_by": "llembed",
                "dimension": m.embedder.dimension,
                "rerank": name in server.rerankers,
                "recipe": _shown_recipe(m.embedder),
            }
            for name, m in server.models.items()
        ]
        + [
            {"id": name, "object": "model", "owned_by": "llembed", "dimension": None, "rerank": True}
            for name in server.rerankers
            if name not in server.models
        ],
        # which reranker answers /v1/rerank without a model, and whether it was trained to
        "reranker": _reranker_info(server),
    }


@router.get("/v1/indexes")
def list_indexes(request: Request) -> dict:
    server = authorized(request)
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "count": len(entry.index),
                "modes": list(entry.index.modes),
                "model": entry.model.name,
                "recipe": {k: v for k, v in entry.index.manifest["recipe"].items() if v not in (None, False)},
            }
            for name, entry in server.indexes.items()
        ],
    }


def _reranker_info(server: Server) -> dict | None:
    if not server.rerankers:
        return None
    default = next(iter(server.rerankers.values()))
    recipe = default.reranker.recipe
    return {
        "default": default.name,
        "zero_shot": default.zero_shot,
        "calibrated": recipe.rerank_calibration is not None,
        "prompt": default.reranker.prompt.name,
        "all": list(server.rerankers),
    }


def _shown_recipe(embedder: Embedder) -> dict:
    """The recipe's fields that are set (the dtype as loaded, not ``auto``): what the playground shows."""
    recipe = {k: v for k, v in embedder.recipe.to_dict().items() if v not in (None, False, [], {})}
    return recipe | {"dtype": embedder.backbone.dtype_name}
