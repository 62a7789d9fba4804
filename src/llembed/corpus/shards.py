"""Embedding one shard into one parquet file, and reading a finished output folder back.

A shard file holds ``id``, optional ``text``, ``vector`` (fixed-size float32 list) and, with sparse output,
``sparse_indices`` / ``sparse_values``. With ``chunks`` a row is one chunk of a document: ``id``, ``chunk`` (its
number in the document), ``start`` / ``end`` (its character span), ``text`` (the chunk's own text), ``vector``.
Its schema metadata (key ``llembed``) records the recipe hash, the shard and the rows that were rejected. The file
is written atomically, so its existence means the shard is done.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from llembed.corpus.manifest import FORMAT, read_manifest
from llembed.corpus.plan import Shard
from llembed.corpus.rows import read_shard
from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.io_utils import atomic_write

METADATA_KEY = b"llembed"
ON_ERROR = ("skip", "stop")


@dataclass(frozen=True)
class ShardOptions:
    """What decides a shard file's content: a re-run must use the same."""

    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 32
    sparse: bool = False
    store_text: bool = True
    on_error: str = "skip"
    chunks: bool = False
    """One row per chunk of each document (the recipe's ``chunk_tokens`` / ``chunk_overlap`` / ``chunking``)."""

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise InputError(f"on_error must be one of {', '.join(ON_ERROR)}, not {self.on_error!r}")
        if self.batch_size <= 0:
            raise InputError(f"batch_size must be positive, not {self.batch_size}")

    def content_key(self) -> dict:
        """The options that change what a shard holds (batch size and on_error do not)."""
        key = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "on_error")}
        if not self.chunks:  # folders written before chunking existed stay resumable
            del key["chunks"]
        return key


def shard_file(output: Path, name: str) -> Path:
    """Where the shard called ``name`` (a :class:`Shard`'s name, or a manifest entry's) is written."""
    return Path(output) / f"{name}.parquet"


def embed_shard(embedder: Embedder, shard: Shard, output: Path, options: ShardOptions, request_hash: str) -> dict:
    """Read, embed and write one shard; returns its summary ``{shard, rows, vectors, errors, seconds}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rows = read_shard(shard, options.text_field, options.id_field)
    if rows.errors and options.on_error == "stop":
        first = rows.errors[0]
        place = f"line {first['line']}" if "line" in first else f"row {first['row']}"
        raise InputError(f"{first['file']}: {place}: {first['error']} (--on-error skip reports it and goes on)")
    dimension = embedder.dimension
    counts = {"empty": 0, "truncated": 0}
    ids, texts = rows.ids, rows.texts
    extra: dict[str, list] = {}
    pooled = {}
    if rows.texts:
        # real corpora hold empty and over-long documents: embedded as mteb does, and counted
        specs = embedder.specs(options.sparse)
        if options.chunks:
            chunked = embedder.pool_chunks(rows.texts, specs, "document", None, options.batch_size, False)
            pooled = chunked.pooled
            ids = [rows.ids[owner] for owner in chunked.owners]
            texts = [rows.texts[owner][a:b] for owner, (a, b) in zip(chunked.owners, chunked.spans, strict=True)]
            extra = {"chunk": _chunk_numbers(chunked.owners), "start": [a for a, _ in chunked.spans]}
            extra["end"] = [b for _, b in chunked.spans]
        else:
            pooled = embedder.pool(
                rows.texts, specs, side="document", batch_size=options.batch_size, show_progress_bar=False, strict=False
            )
        counts = {key: int(embedder.last_stats[key]) for key in counts}
        vectors = embedder.to_float(embedder.format(pooled[embedder.spec])).astype(np.float32)
        dimension = vectors.shape[1]
    else:
        vectors = np.zeros((0, dimension), np.float32)
    columns = {"id": pa.array(ids, pa.string())}
    if options.chunks:
        columns |= {name: pa.array(extra.get(name, []), pa.int64()) for name in ("chunk", "start", "end")}
    if options.store_text:
        columns["text"] = pa.array(texts, pa.string())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dimension)
    if options.sparse:
        matrix = embedder.sparse(pooled) if rows.texts else None
        indices = [matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]].tolist() for i in range(len(ids))]
        values = [matrix.data[matrix.indptr[i] : matrix.indptr[i + 1]].tolist() for i in range(len(ids))]
        columns["sparse_indices"] = pa.array(indices, pa.list_(pa.int32()))
        columns["sparse_values"] = pa.array(values, pa.list_(pa.float32()))
    meta = {
        "format": FORMAT,
        "request_hash": request_hash,
        "recipe_hash": embedder.recipe.digest(),
        "recipe": embedder.recipe.to_dict(),
        "shard": shard.to_dict() | {"path": None},  # where the input lived is no part of the result
        "errors": rows.errors,
        "counts": counts,
    }
    if options.sparse:
        meta["vocab_size"] = embedder.lm_vocab_size
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    atomic_write(shard_file(output, shard.name), lambda tmp: pq.write_table(table, tmp))
    return {
        "shard": shard.name,
        "rows": shard.rows,
        "vectors": len(ids),
        "errors": len(rows.errors),
        **counts,
        "seconds": time.perf_counter() - started,
    }


def _chunk_numbers(owners: list[int]) -> list[int]:
    numbers, previous, count = [], None, 0
    for owner in owners:
        count = count + 1 if owner == previous else 0
        numbers.append(count)
        previous = owner
    return numbers


def shard_metadata(path: Path) -> dict:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise InputError(f"{path} is not an llembed shard (no llembed metadata)")
    return json.loads(meta[METADATA_KEY])


@dataclass
class Vectors:
    """A finished ``embed-corpus`` output, rows in plan order."""

    ids: list[str]
    texts: list[str] | None
    vectors: np.ndarray
    sparse: object | None
    """A (rows × vocab) scipy CSR matrix when the output has sparse columns."""
    spans: list[tuple[int, int, int]] | None = None
    """Per row ``(chunk, start, end)`` when the output was embedded with ``chunks``."""


def read_vectors(output: str | Path, vocab_size: int | None = None) -> Vectors:
    """Load every shard of a finished output folder (see :func:`llembed.corpus.job.embed_corpus`)."""
    import pyarrow.parquet as pq
    import scipy.sparse

    output = Path(output)
    manifest = read_manifest(output)
    missing = [s["name"] for s in manifest["shards"] if not shard_file(output, s["name"]).is_file()]
    if missing:
        raise InputError(
            f"{output} is unfinished: {len(missing)} of {len(manifest['shards'])} shards missing (re-run embed-corpus)"
        )
    tables = [pq.read_table(shard_file(output, s["name"])) for s in manifest["shards"]]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    texts = [x for t in tables for x in t.column("text").to_pylist()] if manifest["options"]["store_text"] else None
    dimension = tables[0].schema.field("vector").type.list_size
    vectors = np.concatenate(
        [np.asarray(t.column("vector").combine_chunks().flatten(), np.float32).reshape(-1, dimension) for t in tables]
    )
    spans = None
    if manifest["options"].get("chunks"):
        spans = [
            (c, a, b)
            for t in tables
            for c, a, b in zip(*(t.column(n).to_pylist() for n in ("chunk", "start", "end")), strict=True)
        ]
    sparse = None
    if manifest["options"]["sparse"]:
        indices = [np.asarray(x, np.int64) for t in tables for x in t.column("sparse_indices").to_pylist()]
        values = [np.asarray(x, np.float32) for t in tables for x in t.column("sparse_values").to_pylist()]
        indptr = np.concatenate([[0], np.cumsum([len(x) for x in indices])])
        width = vocab_size or shard_metadata(shard_file(output, manifest["shards"][0]["name"]))["vocab_size"]
        data = np.concatenate(values) if values else np.zeros(0, np.float32)
        columns = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        sparse = scipy.sparse.csr_matrix((data, columns, indptr), shape=(len(ids), width))
    return Vectors(ids, texts, vectors, sparse, spans)
