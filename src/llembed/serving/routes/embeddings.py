"""``POST /v1/embeddings``: OpenAI's embeddings API (float or base64 vectors, ``dimensions`` for a Matryoshka
cut), and llembed's ``input_type`` / ``task`` for the query or document side."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from llembed.errors import LlembedError
from llembed.serving.requests import RequestError, parse_embedding_request
from llembed.serving.server import authorized

router = APIRouter()


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    server = authorized(request)
    parsed = parse_embedding_request(await server.read_json(request), server.settings.max_texts_per_request)
    model = server.model(parsed.model)
    formatter = model.formatter(parsed.dimensions)
    # tokenizing (to check the limits) off the event loop: other requests keep being read meanwhile
    texts, tokens = await asyncio.to_thread(server.texts_and_tokens, parsed, model)
    try:
        pooled = await model.batcher.embed(texts, parsed.side, parsed.task, tokens)
    except LlembedError as exc:
        raise RequestError(400, str(exc), "input") from exc
    vectors = formatter.to_float(formatter.format(pooled[model.embedder.spec]))
    server.metrics.input_tokens.labels(model.name).inc(tokens)
    server.metrics.texts.labels(model.name).inc(len(texts))
    data = [
        {"object": "embedding", "index": i, "embedding": vector}
        for i, vector in enumerate(_encode_vectors(vectors, parsed.encoding_format))
    ]
    # a Response, not a dict: FastAPI would walk every float through jsonable_encoder first
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": model.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _encode_vectors(vectors: np.ndarray, encoding: str) -> list:
    if encoding == "base64":  # little-endian float32, what the OpenAI client decodes by default
        return [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii") for v in vectors]
    return vectors.astype(np.float32).tolist()
