"""Parsing and validating request bodies by hand: every bad input gets a 400 that names the field, never a 500.

(Pydantic would answer 422 with its own error shape; OpenAI clients expect 400 with ``{"error": {...}}``.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from llembed.errors import InputError
from llembed.fusion import DEFAULT_FUSION, FUSIONS, MODES, check_fusion


class RequestError(Exception):
    """An OpenAI-style error: HTTP status, message, the offending parameter and a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = {401: "authentication_error", 404: "not_found_error"}.get(self.status, "invalid_request_error")
        if self.status >= 500:  # the server's fault, not the request's
            kind = "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the request body is not valid UTF-8 (byte {exc.start})", code="invalid_utf8") from exc
    if not text.strip():
        raise RequestError(400, "the request body is empty: send a JSON object", code="invalid_json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, f"the request body is not valid JSON: {exc.msg} at char {exc.pos}", code="invalid_json"
        ) from exc
    except RecursionError as exc:  # thousands of nested arrays: the parser's stack runs out
        raise RequestError(400, "the request body nests JSON too deeply", code="invalid_json") from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int-to-str limit)
        raise RequestError(
            400, f"the request body holds a number llembed won't read: {exc}", code="invalid_json"
        ) from exc
    try:  # JSON may escape a lone UTF-16 surrogate ("\\ud800"), which is no character: no tokenizer can read it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
        raise RequestError(
            400,
            f"the request body holds a lone UTF-16 surrogate ({bad}), which is not a character",
            code="invalid_json",
        ) from exc
    if not isinstance(data, dict):
        raise RequestError(
            400, f"the request body must be a JSON object, not {type(data).__name__}", code="invalid_json"
        )
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(item: Any) -> str:
    return "str" if isinstance(item, str) else "id" if _is_int(item) else "ids" if isinstance(item, list) else "other"


@dataclass
class EmbeddingRequest:
    texts: list[str] | None
    token_ids: list[list[int]] | None
    model: str | None
    encoding_format: str
    dimensions: int | None
    side: str
    task: str | None


SIDES = {"text": "text", "query": "query", "document": "document", "passage": "document"}


def parse_embedding_request(data: dict[str, Any], max_texts: int) -> EmbeddingRequest:
    if "input" not in data:
        raise RequestError(400, "'input' is required: a string, a list of strings, or token ids", "input")
    raw = data["input"]
    texts: list[str] | None = None
    token_ids: list[list[int]] | None = None
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise RequestError(400, "'input' is an empty list: send at least one text", "input")
        if all(isinstance(item, str) for item in raw):
            texts = raw
        elif all(_is_int(item) for item in raw):
            token_ids = [raw]
        elif all(isinstance(item, list) for item in raw):
            for index, ids in enumerate(raw):
                if not ids or not all(_is_int(t) for t in ids):
                    raise RequestError(400, f"input[{index}] must be a non-empty list of token ids (integers)", "input")
            token_ids = raw
        else:
            kinds = [_kind(item) for item in raw]
            bad = next((i for i, kind in enumerate(kinds) if kind != kinds[0]), 0) if kinds[0] != "other" else 0
            raise RequestError(
                400, f"'input' must be all strings or all token ids; input[{bad}] is {type(raw[bad]).__name__}", "input"
            )
    else:
        raise RequestError(400, f"'input' must be a string or a list, not {type(raw).__name__}", "input")
    count = len(texts if texts is not None else token_ids)
    if count > max_texts:
        raise RequestError(400, f"'input' has {count} items; at most {max_texts} per request", "input")
    if texts is not None:
        for index, text in enumerate(texts):
            if not text.strip():
                raise RequestError(400, f"input[{index}] is empty: an empty text has no meaning to embed", "input")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(400, "'model' must be a string", "model")
    encoding = data.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise RequestError(400, f"'encoding_format' must be 'float' or 'base64', not {encoding!r}", "encoding_format")
    dimensions = data.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions <= 0):
        raise RequestError(400, f"'dimensions' must be a positive integer, not {dimensions!r}", "dimensions")
    side = data.get("input_type", "text")  # llembed extension: query / document prompts of a recipe
    if not isinstance(side, str) or side not in SIDES:
        raise RequestError(400, f"'input_type' must be one of {', '.join(SIDES)}, not {side!r}", "input_type")
    task = data.get("task")
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise RequestError(400, "'task' (the query instruction) must be a non-empty string", "task")
    return EmbeddingRequest(texts, token_ids, model, encoding, dimensions, SIDES[side], task)


@dataclass
class SearchRequest:
    queries: list[str]
    index: str | None
    k: int
    mode: str | None
    """``None``: the index's own first mode (``dense``, or ``multivector`` for a multi-vector index)."""
    fusion: str
    weights: dict[str, float] | None


def parse_search_request(data: dict[str, Any], max_k: int, max_texts: int) -> SearchRequest:
    raw = data.get("query", data.get("queries"))
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(q, str) for q in raw):
        raise RequestError(400, "'query' must be a non-empty string or a non-empty list of strings", "query")
    if len(raw) > max_texts:
        raise RequestError(400, f"{len(raw)} queries; at most {max_texts} per request", "query")
    for index, query in enumerate(raw):
        if not query.strip():
            raise RequestError(400, f"query[{index}] is empty", "query")
    k = data.get("k", 10)
    if not _is_int(k) or not 0 < k <= max_k:
        raise RequestError(400, f"'k' must be an integer in 1..{max_k}, not {k!r}", "k")
    mode = data.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode not in MODES):
        raise RequestError(400, f"'mode' must be one of {', '.join(MODES)}, not {mode!r}", "mode")
    fusion = data.get("fusion", DEFAULT_FUSION)
    weights = data.get("weights")
    if not isinstance(fusion, str) or fusion not in FUSIONS:
        raise RequestError(400, f"'fusion' must be one of {', '.join(FUSIONS)}, not {fusion!r}", "fusion")
    if weights is not None:
        if mode is None:
            raise RequestError(400, "'weights' weigh the channels of a mode: name the 'mode'", "weights")
        if not isinstance(weights, dict):
            raise RequestError(400, "'weights' must be an object: channel → weight", "weights")
        try:
            check_fusion(fusion, weights, MODES[mode])
        except InputError as exc:
            raise RequestError(400, str(exc), "weights") from exc
    index = data.get("index")
    if index is not None and not isinstance(index, str):
        raise RequestError(400, "'index' must be a string", "index")
    return SearchRequest(raw, index, k, mode, fusion, weights)


@dataclass
class RerankRequest:
    query: str
    documents: list[str]
    model: str | None
    top_n: int | None
    return_documents: bool
    raw_scores: bool
    task: str | None


def parse_rerank_request(data: dict[str, Any], max_documents: int) -> RerankRequest:
    """The Jina / Cohere rerank body: ``query``, ``documents`` (strings or objects with ``text``), ``top_n``,
    ``return_documents``; llembed adds ``raw_scores`` (logit differences, not probabilities) and ``task``."""
    query = data.get("query")
    if "query" not in data:
        raise RequestError(400, "'query' is required: the text the documents are judged against", "query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, "'query' must be a non-empty string", "query")
    raw = data.get("documents")
    if "documents" not in data:
        raise RequestError(400, "'documents' is required: a list of strings or of objects with 'text'", "documents")
    if not isinstance(raw, list) or not raw:
        raise RequestError(400, "'documents' must be a non-empty list", "documents")
    if len(raw) > max_documents:
        raise RequestError(400, f"'documents' has {len(raw)} items; at most {max_documents} per request", "documents")
    documents = []
    for index, item in enumerate(raw):
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise RequestError(
                400, f"documents[{index}] must be a string or an object with a 'text' string", "documents"
            )
        if not text.strip():
            raise RequestError(400, f"documents[{index}] is empty: an empty document cannot be judged", "documents")
        documents.append(text)
    top_n = data.get("top_n")
    if top_n is not None and (not _is_int(top_n) or top_n <= 0):
        raise RequestError(400, f"'top_n' must be a positive integer, not {top_n!r}", "top_n")
    flags = {}
    for name, default in (("return_documents", False), ("raw_scores", False)):
        flags[name] = data.get(name, default)
        if not isinstance(flags[name], bool):
            raise RequestError(400, f"'{name}' must be true or false, not {flags[name]!r}", name)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(400, "'model' must be a string", "model")
    task = data.get("task", data.get("instruction"))
    if task is not None and (not isinstance(task, str) or not task.strip()):
        raise RequestError(400, "'task' (the reranking instruction) must be a non-empty string", "task")
    return RerankRequest(query, documents, model, top_n, flags["return_documents"], flags["raw_scores"], task)
