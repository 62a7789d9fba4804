"""``POST /v1/search``: queries against a served index, dense, BM25, sparse, multi-vector or fused."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from llembed.errors import InputError
from llembed.fusion import channels_of
from llembed.serving.requests import RequestError, parse_search_request
from llembed.serving.server import authorized

router = APIRouter()


@router.post("/v1/search")
async def search(request: Request):
    server = authorized(request)
    s = server.settings
    parsed = parse_search_request(await server.read_json(request), s.max_search_k, s.max_texts_per_request)
    if not server.indexes:
        raise RequestError(
            404, "this server has no index (start it with --index NAME=PATH)", "index", "index_not_found"
        )
    name = parsed.index or next(iter(server.indexes))
    if name not in server.indexes:
        raise RequestError(
            404,
            f"index {name!r} is not served here (serving: {', '.join(server.indexes)})",
            "index",
            "index_not_found",
        )
    entry = server.indexes[name]
    mode = parsed.mode or entry.index.modes[0]
    try:
        channels = channels_of(mode, entry.index.channels, f"index {name!r}")
    except InputError as exc:
        raise RequestError(400, str(exc), "mode") from exc
    pooled = {}
    if {"dense", "sparse"} & set(channels):  # BM25 alone needs no forward pass
        tokenizer = entry.model.embedder.tokenizer
        counted = await asyncio.to_thread(tokenizer, parsed.queries, add_special_tokens=False)
        lengths = [len(ids) for ids in counted["input_ids"]]
        pooled = await entry.model.batcher.embed(parsed.queries, "query", None, sum(lengths))
    hits = await asyncio.to_thread(
        entry.index.search_pooled, pooled, parsed.k, mode, parsed.queries, parsed.fusion, parsed.weights
    )
    return {
        "object": "list",
        "index": name,
        "mode": mode,
        **({"fusion": parsed.fusion} if len(channels) > 1 else {}),
        "data": [
            {"query": q, "hits": [h.to_dict() for h in found]} for q, found in zip(parsed.queries, hits, strict=True)
        ],
    }
