"""What the server's routes share: the served models, rerankers and indexes, the limits, the metrics, and the
checks every request goes through (API key, body size, token limits)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from llembed.embedder import Embedder
from llembed.errors import InputError, LlembedError
from llembed.index.build import recipe_hash
from llembed.index.search import VectorIndex
from llembed.reranker import Reranker
from llembed.serving.batcher import DynamicBatcher
from llembed.serving.metrics import ServerMetrics
from llembed.serving.requests import EmbeddingRequest, RequestError, parse_json
from llembed.serving.settings import ServerSettings

logger = logging.getLogger(__name__)


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
        return served(self.models, name, "model", "serving")

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
        return served(self.rerankers, name, "reranker", "reranking")

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


def served(table: dict, name: str | None, what: str, listing: str):
    """``table[name]``, the first entry when no name is given, or a 404 naming what is served."""
    if name is None or name == "":
        return next(iter(table.values()))
    if name not in table:
        raise RequestError(
            404, f"{what} {name!r} is not served here ({listing}: {', '.join(table)})", "model", "model_not_found"
        )
    return table[name]


def authorized(request) -> Server:
    """The app's :class:`Server`, once the request's API key (if the server has keys) is checked: how every
    ``/v1`` route starts."""
    server: Server = request.app.state.server
    server.check_key(request.headers.get("authorization"))
    return server
