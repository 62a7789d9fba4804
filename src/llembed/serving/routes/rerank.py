"""``POST /v1/rerank``: the Jina / Cohere rerank schema, answered by the default (trained) reranker unless a
request names another."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Request

from llembed.errors import LlembedError
from llembed.serving.requests import RequestError, parse_rerank_request
from llembed.serving.server import authorized

router = APIRouter()


@router.post("/v1/rerank")
async def rerank(request: Request):
    server = authorized(request)
    parsed = parse_rerank_request(await server.read_json(request), server.settings.max_documents_per_rerank)
    served = server.reranker(parsed.model)
    # tokenizing a thousand documents takes a while: not on the event loop
    ids, tokens = await asyncio.to_thread(server.document_tokens, served.reranker, parsed.query, parsed.documents)
    try:
        scores = await served.batcher.rerank(parsed.query, ids, parsed.task, tokens)
    except LlembedError as exc:
        raise RequestError(400, str(exc), "documents") from exc
    relevance = scores if parsed.raw_scores else served.reranker.probabilities(scores)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[: parsed.top_n]
    server.metrics.input_tokens.labels(served.name).inc(tokens)
    server.metrics.texts.labels(served.name).inc(len(ids))
    return {
        "object": "list",
        "id": uuid.uuid4().hex,
        "model": served.name,
        "results": [
            {
                "index": i,
                "relevance_score": relevance[i],
                **({"document": {"text": parsed.documents[i]}} if parsed.return_documents else {}),
            }
            for i in order
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
