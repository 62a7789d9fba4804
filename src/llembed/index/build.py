"""``llembed index build``: embed a corpus into a faiss index (+ an optional sparse inverted index), resumably.

Layout of an index folder (renamed into place only when complete)::

    manifest.json   recipe, count, dimension, faiss kind, sparse or not, recipe hash
    recipe.yaml     the embedder that built it (queries must use the same)
    docs.jsonl      {"id", "text"} per row, in index order
    dense.faiss     inner product over unit vectors (= cosine)
    sparse.npz      rows × vocab CSR of LM-head lexical weights (optional)
    bm25/           a bm25s index over the rows' texts (documents, or chunks' spans); on unless ``bm25=False``
    chunks.npy      with ``chunks``: per row (document number, start, end): rows are chunks of the documents,
                    and a search returns each document once, with its best chunk's span; with ``multivector``
                    the rows are each document's token (or chunk) vectors, searched by late interaction

Embedding is the long part: it runs in chunks cached under ``<out>.partial/`` (each chunk written atomically),
so a killed build re-run with the same arguments continues from the last finished chunk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
from tqdm.auto import tqdm

from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.io_utils import atomic_directory, atomic_write, atomic_write_text
from llembed.output import unit_rows

EXACT_LIMIT = 100_000
"""Up to this many rows the index is exact (flat); above it, HNSW (search cost grows ~log n, recall ≈ 0.99)."""
HNSW_NEIGHBOURS = 32
CHUNK_ROWS = 2048
MULTIVECTOR_ROWS = 128
"""Documents embedded (and cached) at a time for a multi-vector index: a document brings hundreds of vectors."""
KINDS = ("auto", "flat", "hnsw")


@dataclass
class Corpus:
    ids: list[str]
    texts: list[str]


def read_corpus(paths: Sequence[str | Path], text_field: str = "text", id_field: str = "id") -> Corpus:
    """Rows from .jsonl / .parquet / .csv / .txt files or folders of them; ids default to ``file:row``.

    Errors name the file and line; duplicate ids are an error (a search hit must name one document).
    """
    from llembed.texts_io import READ_FORMATS, read_texts

    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in READ_FORMATS and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"corpus not found: {path}")
    if not files:
        raise InputError(f"no corpus files ({', '.join(READ_FORMATS)}) in {', '.join(map(str, paths))}")
    ids: list[str] = []
    texts: list[str] = []
    for file in files:
        table = read_texts(file, column=text_field, id_column=id_field)
        names = table.ids if table.ids is not None else [f"{file.name}:{i}" for i in range(len(table.texts))]
        ids += [str(name) for name in names]
        texts += table.texts
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id in seen:
            raise InputError(f"duplicate document id {doc_id!r} in the corpus: ids must be unique")
        seen.add(doc_id)
    return Corpus(ids, texts)


def recipe_hash(embedder: Embedder) -> str:
    """Stable hash of the embedder's recipe: vectors from different recipes must never be mixed."""
    return embedder.recipe.digest()


def build_index(
    embedder: Embedder,
    corpus: Corpus,
    out: str | Path,
    kind: str = "auto",
    sparse: bool = False,
    batch_size: int = 32,
    show_progress_bar: bool = True,
    chunks: bool = False,
    bm25: bool = True,
    multivector: str | None = None,
    pool_factor: int = 1,
) -> Path:
    """Embed ``corpus`` as documents and write a searchable index folder at ``out`` (atomically).

    ``chunks``: index every chunk of the documents (the recipe's ``chunk_tokens`` / ``chunk_overlap``; late
    chunking when its ``chunking`` is ``late``) instead of one vector per document. ``multivector`` (``token`` or
    ``chunk``, :data:`llembed.multivector.UNITS`): keep every token's (or chunk's) vector of each document,
    token-pooled by ``pool_factor``, for ``mode="multivector"`` (MaxSim) searches."""
    from llembed.multivector import UNITS, embed_multivector

    if kind not in KINDS:
        raise InputError(f"index kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not corpus.texts:
        raise InputError("the corpus is empty")
    if multivector is not None and multivector not in UNITS:
        raise InputError(f"multivector must be one of {', '.join(UNITS)}, not {multivector!r}")
    if multivector is not None and (sparse or chunks):
        raise InputError("a multi-vector index keeps its own rows: leave out --sparse and --chunks")
    if pool_factor < 1 or (pool_factor > 1 and multivector is None):
        raise InputError(f"pool factor {pool_factor}: a positive number, and only for a multi-vector index")
    from llembed.chunked import resolve_chunking

    embedder = resolve_chunking(embedder, corpus.texts)  # ``auto``: chosen for this corpus, recorded resolved
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    key = recipe_hash(embedder) + ("+sparse" if sparse else "") + ("+chunks" if chunks else "")
    key += f"+multivector:{multivector}:{pool_factor}" if multivector else ""
    key += f":{_corpus_hash(corpus)}"
    if (work / "key").is_file() and (work / "key").read_text() != key:
        shutil.rmtree(work)  # a different recipe or corpus: its chunks are not ours
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_text(work / "key", key)

    dense_parts, sparse_parts, chunk_parts = [], [], []
    part = CHUNK_ROWS if multivector is None else MULTIVECTOR_ROWS
    starts = range(0, len(corpus.texts), part)
    bar = tqdm(total=len(corpus.texts), desc="indexing", unit="doc", disable=not show_progress_bar)
    with bar:
        for number, start in enumerate(starts):
            dense_file, sparse_file = work / f"dense-{number:06d}.npy", work / f"sparse-{number:06d}.npz"
            chunk_file = work / f"chunks-{number:06d}.npy"
            if not dense_file.is_file() or (sparse and not sparse_file.is_file()):
                group = corpus.texts[start : start + part]
                specs = embedder.specs(sparse)
                if multivector is not None:
                    multi = embed_multivector(embedder, group, multivector, pool_factor, "document", None, batch_size)
                    owners = np.repeat(np.arange(start, start + len(group)), multi.counts)[:, None]
                    located = np.concatenate([owners, multi.spans], axis=1).astype(np.int64)
                    atomic_write(chunk_file, lambda tmp, r=located: _save_npy(tmp, r))
                    atomic_write(dense_file, lambda tmp, v=multi.vectors: _save_npy(tmp, v))
                elif chunks:
                    chunked = embedder.pool_chunks(group, specs, "document", None, batch_size, False)
                    pooled = chunked.pooled
                    rows = [(start + owner, a, b) for owner, (a, b) in zip(chunked.owners, chunked.spans, strict=True)]
                    located = np.asarray(rows, np.int64)
                    atomic_write(chunk_file, lambda tmp, r=located: _save_npy(tmp, r))
                else:  # a corpus is real data: empty and over-long documents as embed-corpus does
                    pooled = embedder.pool(group, specs, "document", None, batch_size, False, strict=False)
                if multivector is None:
                    vectors = embedder.to_float(embedder.format(pooled[embedder.spec]))
                    if sparse:
                        matrix = embedder.sparse(pooled)
                        atomic_write(sparse_file, lambda tmp, m=matrix: _save_npz(tmp, m))
                    atomic_write(dense_file, lambda tmp, v=vectors: _save_npy(tmp, v))
            dense_parts.append(np.load(dense_file))
            if chunks or multivector:
                chunk_parts.append(np.load(chunk_file))
            if sparse:
                sparse_parts.append(scipy.sparse.load_npz(sparse_file))
            bar.update(min(part, len(corpus.texts) - start))

    vectors = np.concatenate(dense_parts).astype(np.float32)
    matrix = scipy.sparse.vstack(sparse_parts).tocsr() if sparse else None
    chunk_rows = np.concatenate(chunk_parts) if chunks or multivector else None
    late = {"unit": multivector, "pool_factor": pool_factor} if multivector else None
    write_index(out, corpus.ids, corpus.texts, vectors, matrix, embedder.recipe, kind, chunk_rows, bm25, late)
    shutil.rmtree(work, ignore_errors=True)
    return out


def build_index_from_vectors(folder: str | Path, out: str | Path, kind: str = "auto", bm25: bool = True) -> Path:
    """An index over the vectors of an ``llembed embed-corpus`` output folder: nothing is embedded again."""
    from llembed.corpus import read_manifest, read_vectors
    from llembed.recipe import Recipe

    if kind not in KINDS:
        raise InputError(f"index kind must be one of {', '.join(KINDS)}, not {kind!r}")
    manifest = read_manifest(folder)
    data = read_vectors(folder)
    if "recipe" not in manifest:
        raise InputError(f"{folder} is unfinished: re-run the same embed-corpus command to complete it")
    if data.texts is None:
        raise InputError(f"{folder} was embedded with --no-text; an index keeps the texts (re-run with --store-text)")
    if not data.ids:
        raise InputError(f"{folder} holds no vectors")
    recipe = Recipe.from_dict(manifest["recipe"])
    if data.spans is not None:
        ids, texts, chunk_rows = documents_of_chunks(data.ids, data.texts, data.spans)
        write_index(out, ids, texts, data.vectors, data.sparse, recipe, kind, chunk_rows, bm25)
        return Path(out)
    if len(set(data.ids)) != len(data.ids):
        raise InputError(f"{folder} has duplicate ids: a search hit must name one document")
    write_index(out, data.ids, data.texts, data.vectors, data.sparse, recipe, kind, bm25=bm25)
    return Path(out)


def documents_of_chunks(
    ids: Sequence[str], texts: Sequence[str], spans: Sequence[tuple[int, int, int]]
) -> tuple[list[str], list[str], np.ndarray]:
    """Documents back from their chunk rows (an ``embed-corpus --chunks`` output): each document's text is its
    chunks laid at their spans (characters no chunk covers, such as whitespace a tokenizer drops, are spaces)."""
    number: dict[str, int] = {}
    documents: list[str] = []
    rows = []
    for doc_id, text, (chunk, start, end) in zip(ids, texts, spans, strict=True):
        if doc_id not in number:
            if chunk != 0:
                raise InputError(f"document {doc_id!r}: its chunks are not in order (chunk {chunk} comes first)")
            number[doc_id] = len(documents)
            documents.append("")
        elif chunk == 0:
            raise InputError(f"duplicate document id {doc_id!r}: a search hit must name one document")
        current = documents[number[doc_id]]
        documents[number[doc_id]] = current.ljust(start)[:start] + text + current[start + len(text) :]
        rows.append((number[doc_id], start, end))
    return list(number), documents, np.asarray(rows, np.int64)


def write_index(
    out: str | Path,
    ids: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray,
    sparse_matrix: scipy.sparse.csr_matrix | None,
    recipe,
    kind: str = "auto",
    chunk_rows: np.ndarray | None = None,
    bm25: bool = True,
    multivector: dict | None = None,
) -> Path:
    """Write an index folder at ``out`` (atomically) from document vectors made with ``recipe``; with
    ``chunk_rows`` (per vector: document number, start, end) the vectors are the documents' chunks (or, with
    ``multivector`` — its unit and pool factor — their token or chunk vectors). ``bm25``: also a BM25 index over
    each row's text, so a search can fuse it with the vectors."""
    import faiss

    from llembed.bm25 import BM25

    vectors = unit_rows(np.asarray(vectors, np.float32))
    sparse = sparse_matrix is not None
    chosen = ("flat" if len(vectors) <= EXACT_LIMIT else "hnsw") if kind == "auto" else kind
    if chosen == "flat":
        index = faiss.IndexFlatIP(vectors.shape[1])
    else:
        index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
    index.add(vectors)
    lexical = None
    if bm25 and multivector is None:  # one BM25 row per vector: a chunk index's rows are its chunks
        try:
            lexical = BM25.build(_row_texts(texts, chunk_rows))
        except InputError as exc:  # a corpus without a single word still gets its vector index
            warnings.warn(f"no BM25 part: {exc}", stacklevel=2)

    def write(folder: Path) -> None:
        faiss.write_index(index, str(folder / "dense.faiss"))
        if sparse:
            scipy.sparse.save_npz(folder / "sparse.npz", sparse_matrix)
        if chunk_rows is not None:
            np.save(folder / "chunks.npy", chunk_rows)
        if lexical is not None:
            (folder / "bm25").mkdir()
            lexical.save(folder / "bm25")
        with (folder / "docs.jsonl").open("w", encoding="utf-8") as handle:
            for doc_id, text in zip(ids, texts, strict=True):
                handle.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
        recipe.save(folder / "recipe.yaml")
        manifest = {
            "format": "llembed-index/1",
            "count": len(vectors),
            "dimension": int(vectors.shape[1]),
            "kind": chosen,
            "sparse": sparse,
            "bm25": lexical is not None,
            "chunks": chunk_rows is not None,
            "multivector": multivector,
            "documents": len(ids),
            "recipe_hash": recipe.digest(),
            "recipe": recipe.to_dict(),
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")

    return atomic_directory(Path(out), write)


def _row_texts(texts: Sequence[str], chunk_rows: np.ndarray | None) -> list[str]:
    """The text of each index row: the documents, or in a chunk index each chunk's span of its document."""
    if chunk_rows is None:
        return list(texts)
    return [texts[d][a:b] for d, a, b in chunk_rows.tolist()]


def _corpus_hash(corpus: Corpus) -> str:
    digest = hashlib.sha256()
    for doc_id, text in zip(corpus.ids, corpus.texts, strict=True):
        digest.update(doc_id.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with tmp.open("wb") as handle:
        np.save(handle, array)


def _save_npz(tmp: Path, matrix: scipy.sparse.csr_matrix) -> None:
    with tmp.open("wb") as handle:
        scipy.sparse.save_npz(handle, matrix)


def add_bm25(folder: str | Path) -> Path:
    """Give an index built without BM25 (or before the channel existed) its ``bm25/`` part, from its own texts:
    the part is renamed into place first, and the manifest says so only after."""
    from llembed.bm25 import BM25
    from llembed.io_utils import iter_jsonl

    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("bm25"):
        return folder
    texts = [row["text"] for _, row in iter_jsonl(folder / "docs.jsonl")]
    chunk_rows = np.load(folder / "chunks.npy") if manifest.get("chunks") else None
    lexical = BM25.build(_row_texts(texts, chunk_rows))
    atomic_directory(folder / "bm25", lexical.save)
    atomic_write_text(folder / "manifest.json", json.dumps(manifest | {"bm25": True}, indent=2, default=str) + "\n")
    return folder
