"""The HTTP server: OpenAI-compatible ``/v1/embeddings``, ``/v1/search`` over faiss indexes, ``/v1/rerank`` (the
Jina / Cohere schema), metrics, health and the web playground, each model behind its own :class:`DynamicBatcher`.

    app = create_app({"smollm2": embedder}, {"scifact": VectorIndex.load("runs/scifact-index")})

Every served causal LM also reranks, on its own model thread; ``rerankers`` adds other models as rerankers. The
shared state is :class:`llembed.serving.server.Server`; each endpoint group is a module of
:mod:`llembed.serving.routes`.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llembed.embedder import Embedder
from llembed.index.search import VectorIndex
from llembed.reranker import Reranker
from llembed.serving.requests import RequestError
from llembed.serving.routes import ROUTERS, ROUTES
from llembed.serving.server import ServedIndex, ServedModel, ServedReranker, Server
from llembed.serving.settings import ServerSettings

logger = logging.getLogger(__name__)
__all__ = ["ROUTES", "ServedIndex", "ServedModel", "ServedReranker", "Server", "create_app"]


def create_app(
    models: dict[str, Embedder] | None = None,
    indexes: dict[str, VectorIndex] | None = None,
    settings: ServerSettings | None = None,
    rerankers: dict[str, Reranker] | None = None,
    self_rerank: bool = True,
):
    """A FastAPI app serving ``models`` (name → embedder), ``indexes`` (name → index) and ``rerankers`` (name →
    reranker; the first is the default), and with ``self_rerank`` every served causal LM as a zero-shot reranker
    too."""
    from contextlib import asynccontextmanager

    server = Server(models or {}, indexes or {}, settings or ServerSettings(), rerankers, self_rerank)

    @asynccontextmanager
    async def lifespan(app):
        yield
        server.close()

    app = FastAPI(title="llembed", lifespan=lifespan)
    app.state.server = server
    metrics = server.metrics
    for router in ROUTERS.values():
        app.include_router(router)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(status_code=exc.status_code, content=RequestError(exc.status_code, str(exc.detail)).body())

    @app.middleware("http")
    async def observe(request: Request, call_next):
        started = time.perf_counter()
        endpoint = request.url.path if request.url.path in ROUTES else "other"
        try:
            response = await call_next(request)
        except Exception:  # an unexpected failure: OpenAI's error shape, the details in the log
            logger.exception("unhandled error on %s", request.url.path)
            response = JSONResponse(status_code=500, content=RequestError(500, "internal server error").body())
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    return app
