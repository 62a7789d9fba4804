"""The HTTP server: OpenAI-compatible ``/v1/embeddings``, ``/v1/search`` over faiss indexes, ``/v1/rerank`` (the
Jina / Cohere schema), metrics, health and the web playground, each model behind its own :class:`DynamicBatcher`.

    app = create_app({"smollm2": embedder}, {"scifact": VectorIndex.load("runs/scifact-index")})

Every served causal LM also reranks, on its own model thread; ``rerankers`` adds other models as rerankers.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from llembed.embedder import Embedder
from llembed.errors import InputError, LlembedError
from llembed.fusion import channels_of
from llembed.index.build import recipe_hash
from llembed.index.search import VectorIndex
from llembed.reranker import Reranker
from llembed.serving.batcher import DynamicBatcher
from llembed.serving.metrics import ServerMetrics
from llembed.serving.requests import (
    EmbeddingRequest,
    RequestError,
    parse_embedding_request,
    parse_json,
    parse_rerank_request,
    parse_search_request,
)
from llembed.serving.settings import ServerSettings

logger = logging.getLogger(__name__)
ROUTES = ("/", "/health", "/metrics", "/v1/models", "/v1/indexes", "/v1/embeddings", "/v1/search", "/v1/rerank")


@dataclass
class ServedModel:
    name: str
    embedder: Embedder
    batcher: DynamicBatcher
    _formatters: dict[int | None, Embedder] = field(default_factory=dict)

    def formatter(self, dimensions: int | None) -> Embedder:
        """The embedder whose ``format`` cuts to ``dimensions`` (Matryoshka) and renormalises."""
        if dimensions not in self._formatters:
            full = self.embedder.dimension
            if dimensions is not None and dimensions > full:
                raise RequestError(400, f"'dimensions' is {dimensions}; this model gives at most {full}", "dimensions")
            self._formatters[dimensions] = (
                self.embedder if dimensions is None else self.embedder.replace(truncate_dim=dimensions)
            )
        return self._formatters[dimensions]


@dataclass
class ServedReranker:
    name: str
    reranker: Reranker
    batcher: DynamicBatcher
    """A served model's own batcher when it reranks with that model's weights, else one of its own."""
    zero_shot: bool = False
    """A served embedding model answering with its own yes/no, not trained to rerank."""


@dataclass
class ServedIndex:
    name: str
    index: VectorIndex
    model: ServedModel


class Server:
    """What the routes share: models, indexes, limits, metrics."""

    def __init__(
        self,
        models: dict[str, Embedder],
        indexes: dict[str, VectorIndex],
        settings: ServerSettings,
        rerankers: dict[str, Reranker] | None = None,
        self_rerank: bool = True,
    ) -> None:
        if not models and not indexes and not rerankers:
            raise InputError("serve at least one model, index or reranker")
        self.settings = settings.with_env_keys()
        self.metrics = ServerMetrics()
        self.self_rerank = self_rerank
        """Whether served causal LMs also answer ``/v1/rerank`` with their own (zero-shot) yes/no."""
        self.rerankers: dict[str, ServedReranker] = {}
        for name, reranker in (rerankers or {}).items():  # named ones first: they are the default
            batcher = self._batcher(name, None, reranker)
            self.rerankers[name] = ServedReranker(name, reranker, batcher)
        self.models: dict[str, ServedModel] = {}
        for name, embedder in models.items():
            self._add_model(name, embedder)
        self.indexes: dict[str, ServedIndex] = {}
        for name, index in indexes.items():
            # an index shares a served model's batcher when the recipes match; otherwise it serves its own
            model = next(
                (m for m in self.models.values() if recipe_hash(m.embedder) == index.manifest["recipe_hash"]), None
            )
            if model is None:
                model = self._add_model(name if name not in self.models else f"{name}-index", index.embedder)
            index.embedder = model.embedder
            self.indexes[name] = ServedIndex(name, index, model)

    def _add_model(self, name: str, embedder: Embedder) -> ServedModel:
        reranker = None
        if self.self_rerank and embedder.backbone.is_decoder and name not in self.rerankers:
            try:
                reranker = Reranker.of(embedder)
            except LlembedError as exc:  # e.g. a tokenizer whose "yes" is two tokens: it serves embeddings only
                logger.warning("%s will not rerank: %s", name, exc)
        batcher = self._batcher(name, embedder, reranker)
        self.models[name] = ServedModel(name, embedder, batcher)
        if reranker is not None:
            self.rerankers[name] = ServedReranker(name, reranker, batcher, zero_shot=True)
        return self.models[name]

    def _batcher(self, name: str, embedder: Embedder | None, reranker: Reranker | None) -> DynamicBatcher:
        s = self.settings
        observer = self.metrics.batch_observer(name)
        return DynamicBatcher(embedder, s.max_batch_tokens, s.max_wait_ms, s.batch_size, observer, reranker)

    def close(self) -> None:
        batchers = {id(m.batcher): m.batcher for m in [*self.models.values(), *self.rerankers.values()]}
        for batcher in batchers.values():
            batcher.close()

    # ------------------------------------------------------------------ helpers
    def check_key(self, authorization: str | None) -> None:
        keys = self.settings.api_keys
        if not keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise RequestError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        if not any(secrets.compare_digest(token.strip().encode(), key.encode()) for key in keys):
            raise RequestError(401, "incorrect API key", code="invalid_api_key")

    async def read_json(self, request) -> dict:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"the request body is {declared} bytes; at most {limit}", code="body_too_large")

        async def receive() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"the request body is over {limit} bytes", code="body_too_large")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            body = await asyncio.wait_for(receive(), self.settings.body_timeout_s)
        except TimeoutError as exc:
            raise RequestError(408, "the request body did not arrive in time", code="timeout") from exc
        return parse_json(body)

    def model(self, name: str | None) -> ServedModel:
        return _served(self.models, name, "model", "serving")

    def reranker(self, name: str | None) -> ServedReranker:
        if not self.rerankers:
            raise RequestError(
                404,
                "this server has no reranker: start it with --reranker MODEL (or --reranker self for the served "
                "model's own zero-shot answer)",
                "model",
                "model_not_found",
            )
        if name in self.models and name not in self.rerankers:
            own = " or start the server with --reranker self for its own zero-shot answer"
            raise RequestError(
                404,
                f"{name!r} serves embeddings here, not reranking: leave out model (the default reranker, "
                f"{next(iter(self.rerankers))!r}){own if self.models[name].embedder.backbone.is_decoder else ''}",
                "model",
                "model_not_found",
            )
        return _served(self.rerankers, name, "reranker", "reranking")

    def document_tokens(self, reranker: Reranker, query: str, documents: list[str]) -> tuple[list[list[int]], int]:
        """The documents' token ids, each within the per-text limit, and the request's tokens (query + documents)."""
        s = self.settings
        ids = reranker.document_ids(documents)
        for index, document in enumerate(ids):
            if len(document) > s.max_tokens_per_text:
                raise RequestError(
                    400,
                    f"documents[{index}] has {len(document)} tokens; at most {s.max_tokens_per_text} per document",
                    "documents",
                )
        total = len(reranker.tokenizer(query, add_special_tokens=False)["input_ids"]) + sum(map(len, ids))
        if total > s.max_tokens_per_request:
            raise RequestError(400, f"the request has {total} tokens; at most {s.max_tokens_per_request}", "documents")
        return ids, total

    def texts_and_tokens(self, request: EmbeddingRequest, model: ServedModel) -> tuple[list[str], int]:
        s = self.settings
        tokenizer = model.embedder.tokenizer
        if request.token_ids is not None:
            vocab = len(tokenizer)
            for index, ids in enumerate(request.token_ids):
                bad = next((t for t in ids if not 0 <= t < vocab), None)
                if bad is not None:
                    raise RequestError(
                        400,
                        f"input[{index}] has token id {bad}, outside this model's vocabulary (0..{vocab - 1})",
                        "input",
                    )
            # ids are decoded to text so that the recipe's prompt template can wrap them like any text
            texts = tokenizer.batch_decode(request.token_ids, skip_special_tokens=True)
            for index, text in enumerate(texts):
                if not text.strip():
                    raise RequestError(400, f"input[{index}] decodes to an empty text", "input")
            lengths = [len(ids) for ids in request.token_ids]
        else:
            texts = request.texts
            lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for index, length in enumerate(lengths):
            if length > s.max_tokens_per_text:
                raise RequestError(
                    400, f"input[{index}] has {length} tokens; at most {s.max_tokens_per_text} per text", "input"
                )
        total = sum(lengths)
        if total > s.max_tokens_per_request:
            raise RequestError(400, f"the request has {total} tokens; at most {s.max_tokens_per_request}", "input")
        return texts, total


def _served(table: dict, name: str | None, what: str, listing: str):
    """``table[name]``, the first entry when no name is given, or a 404 naming what is served."""
    if name is None or name == "":
        return next(iter(table.values()))
    if name not in table:
        raise RequestError(
            404, f"{what} {name!r} is not served here ({listing}: {', '.join(table)})", "model", "model_not_found"
        )
    return table[name]


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


def _encode_vectors(vectors: np.ndarray, encoding: str) -> list:
    if encoding == "base64":  # little-endian float32, what the OpenAI client decodes by default
        return [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii") for v in vectors]
    return vectors.astype(np.float32).tolist()


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

    @app.get("/", response_class=HTMLResponse)
    def playground() -> str:
        return resources.files("llembed.serving").joinpath("static/playground.html").read_text(encoding="utf-8")

    @app.get("/health")
    def health() -> dict:
        return {
            "status": "ok",
            "models": list(server.models),
            "indexes": list(server.indexes),
            "rerankers": list(server.rerankers),
        }

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    def list_models(request: Request) -> dict:
        server.check_key(request.headers.get("authorization"))
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

    @app.get("/v1/indexes")
    def list_indexes(request: Request) -> dict:
        server.check_key(request.headers.get("authorization"))
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

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        server.check_key(request.headers.get("authorization"))
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
        metrics.input_tokens.labels(model.name).inc(tokens)
        metrics.texts.labels(model.name).inc(len(texts))
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

    @app.post("/v1/search")
    async def search(request: Request):
        server.check_key(request.headers.get("authorization"))
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
                {"query": q, "hits": [h.to_dict() for h in found]}
                for q, found in zip(parsed.queries, hits, strict=True)
            ],
        }

    @app.post("/v1/rerank")
    async def rerank(request: Request):
        server.check_key(request.headers.get("authorization"))
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
        metrics.input_tokens.labels(served.name).inc(tokens)
        metrics.texts.labels(served.name).inc(len(ids))
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

    return app
