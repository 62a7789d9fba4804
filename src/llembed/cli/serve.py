"""``llembed serve``, ``llembed index build`` and ``llembed search``: thin commands over :mod:`llembed.serving`
and :mod:`llembed.index`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from llembed.cli.common import ModelOpt, RecipeOpt, console, handle_errors, load_embedder, out, recipe_flags
from llembed.errors import LlembedError
from llembed.fusion import (
    DEFAULT_FUSION,
    MODES,
    RERANK_WEIGHT,
    channels_of,
    check_fusion,
    check_rerank_weight,
    modes_of,
)

index_app = typer.Typer(
    help="Build vector indexes (faiss, plus an optional sparse inverted index).", no_args_is_help=True
)


def _named(value: str, what: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise LlembedError(f"--{what} takes NAME=PATH, not {value!r}")
    return name, path


@handle_errors
@recipe_flags()
def serve_command(
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    name: Annotated[str | None, typer.Option(help="Model name clients send (default: the model's name)")] = None,
    index: Annotated[
        list[str] | None, typer.Option(help="Serve an index: NAME=PATH (repeat to compare recipes)")
    ] = None,
    no_model: Annotated[bool, typer.Option("--indexes-only", help="Serve only the indexes' own embedders")] = False,
    reranker: Annotated[
        str,
        typer.Option(
            help="Who answers /v1/rerank: 'auto' (the reranker shipped with llembed, smollm2-135m-ql-reranker), "
            "'self' (the served model's own zero-shot yes/no), 'none', or a model to load as the reranker"
        ),
    ] = "auto",
    demo: Annotated[
        bool,
        typer.Option(
            help="Also serve demo indexes of SciFact abstracts: 'demo' (this recipe) and a contrasting recipe "
            "(built once each, cached), to compare side by side in the playground"
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    api_key: Annotated[
        list[str] | None, typer.Option(help="Accepted Bearer key (repeat; also LLEMBED_API_KEYS)")
    ] = None,
    max_batch_tokens: Annotated[int, typer.Option(help="Dynamic batching: tokens merged per model call")] = 16384,
    max_wait_ms: Annotated[float, typer.Option(help="Dynamic batching: a lone request's wait for company")] = 2.0,
    max_texts_per_request: Annotated[int, typer.Option(help="Limit on texts per request")] = 2048,
    max_tokens_per_text: Annotated[int, typer.Option(help="Limit on tokens per text")] = 8192,
    max_tokens_per_request: Annotated[int, typer.Option(help="Limit on tokens per request")] = 300_000,
    ray_replicas: Annotated[
        int | None, typer.Option(help="Deploy on Ray Serve with N replicas (each its own model and batcher)")
    ] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster for --ray-replicas (default: local)")] = None,
    cpus_per_replica: Annotated[float, typer.Option(help="CPUs (and torch threads) per Ray Serve replica")] = 1.0,
    recipe_fields: dict | None = None,
) -> None:
    """Serve an OpenAI-compatible embeddings API, vector search and the web playground (at /)."""
    from llembed.serving import ServerSettings
    from llembed.serving.assembly import AppSpec, build_app

    settings = ServerSettings(
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_texts_per_request=max_texts_per_request,
        max_tokens_per_text=max_tokens_per_text,
        max_tokens_per_request=max_tokens_per_request,
        api_keys=tuple(api_key or ()),
    ).with_env_keys()
    spec = AppSpec(
        model=model,
        recipe=None if recipe is None else str(recipe),
        fields=tuple(recipe_fields.items()),
        name=name,
        indexes=tuple(_named(value, "index") for value in index or []),
        indexes_only=no_model,
        reranker=reranker,
        demo=demo,
        settings=settings,
    )
    if ray_replicas is not None:
        _serve_on_ray(spec, ray_replicas, host, port, ray_address, cpus_per_replica)
        return
    app = build_app(spec)
    import uvicorn

    served = app.state.server
    console.print(
        f"serving models {list(served.models)}, indexes {list(served.indexes)} and rerankers "
        f"{list(served.rerankers)} on http://{host}:{port} (playground at /, OpenAI API at /v1)"
        f"{' with API keys' if served.settings.api_keys else ''}"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _serve_on_ray(spec, replicas: int, host: str, port: int, address: str | None, cpus_per_replica: float) -> None:
    import time

    from llembed.serving import ray_serve

    url = ray_serve.deploy(spec, replicas, host, port, address=address, cpus_per_replica=cpus_per_replica)
    console.print(f"serving on Ray Serve: {ray_serve.running_replicas()} replicas at {url} (Ctrl-C stops)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ray_serve.shutdown()


@index_app.command("build")
@handle_errors
@recipe_flags()
def index_build_command(
    corpus: Annotated[list[Path], typer.Argument(help="Corpus files or folders: .jsonl, .parquet, .csv, .txt")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Index folder to write")],
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    text_field: Annotated[str, typer.Option(help="Text field/column")] = "text",
    id_field: Annotated[str, typer.Option(help="Id field/column (default ids: file:row)")] = "id",
    kind: Annotated[str, typer.Option(help="auto (exact up to 100k docs, then HNSW) | flat | hnsw")] = "auto",
    sparse: Annotated[bool, typer.Option("--sparse/--dense-only", help="Also a sparse (LM-head) index")] = False,
    bm25: Annotated[
        bool, typer.Option("--bm25/--no-bm25", help="Also a BM25 index of the texts (modes bm25, dense+bm25, …)")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass", min=1)] = 32,
    chunks: Annotated[
        bool,
        typer.Option(
            "--chunks/--whole",
            help="Index every chunk (--chunk-tokens, --chunk-overlap; --chunking late for context); a search "
            "returns each document once, with its best chunk",
        ),
    ] = False,
    multivector: Annotated[
        str | None,
        typer.Option(
            help="token | chunk: keep every token's (or chunk's) vector of each document for --mode multivector "
            "(late interaction, MaxSim)"
        ),
    ] = None,
    pool_factor: Annotated[
        int, typer.Option(help="With --multivector: merge similar vectors, about this many into one", min=1)
    ] = 1,
    auto_sample: Annotated[
        Path | None,
        typer.Option(
            help="With --chunking auto: a small labelled retrieval set from this collection (BEIR layout); auto "
            "keeps the chunking (first | mean | none) that scores best on it instead of the length rule"
        ),
    ] = None,
    recipe_fields: dict | None = None,
) -> None:
    """Embed a corpus into a searchable index folder (resumable: re-run the same command after a crash)."""
    from llembed.corpus import is_vectors_folder, read_manifest
    from llembed.index import build_index
    from llembed.index.build import build_index_from_vectors, read_corpus

    if len(corpus) == 1 and is_vectors_folder(corpus[0]):  # an embed-corpus output: vectors already made
        if multivector is not None:
            raise LlembedError(f"{corpus[0]} holds one vector per text or chunk: --multivector embeds the corpus")
        if model is not None or recipe is not None or recipe_fields:
            raise LlembedError(
                f"{corpus[0]} holds vectors with their own recipe: drop --model / --recipe / recipe flags"
            )
        if chunks and not read_manifest(corpus[0])["options"].get("chunks"):
            raise LlembedError(f"{corpus[0]} holds whole documents: embed it with `embed-corpus --chunks`")
        if sparse and not read_manifest(corpus[0])["options"]["sparse"]:
            raise LlembedError(f"{corpus[0]} has no sparse vectors: embed it with `embed-corpus --sparse`")
        console.print(f"indexing the vectors of {corpus[0]} (no embedding needed)")
        path = build_index_from_vectors(corpus[0], output, kind=kind, bm25=bm25)
        manifest = json.loads((path / "manifest.json").read_text())
        console.print(f"wrote {manifest['kind']} index of {manifest['count']} × {manifest['dimension']} to {path}")
        return
    table = read_corpus(corpus, text_field, id_field)
    embedder = load_embedder(model, recipe, **recipe_fields)
    if auto_sample is not None:
        from llembed.evaluation.datasets import load_dataset
        from llembed.evaluation.long_documents import choose_chunking_on_sample

        if embedder.recipe.chunking != "auto":
            raise LlembedError("--auto-sample settles chunking: auto: pass --chunking auto with it")
        embedder, scores = choose_chunking_on_sample(embedder, load_dataset(auto_sample), batch_size=batch_size)
        tried = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        console.print(f"chunking {embedder.recipe.chunking} (nDCG@10 on {auto_sample}: {tried})")
    console.print(f"[bold]{embedder}[/bold]\n{len(table.texts)} documents")
    path = build_index(
        embedder, table, output, kind, sparse, batch_size,
        chunks=chunks, bm25=bm25, multivector=multivector, pool_factor=pool_factor,
    )  # fmt: skip
    manifest = json.loads((path / "manifest.json").read_text())
    console.print(f"wrote {manifest['kind']} index of {manifest['count']} × {manifest['dimension']} to {path}")


@handle_errors
def search_command(
    index: Annotated[Path, typer.Argument(help="Index folder (from `llembed index build`)")],
    query: Annotated[list[str], typer.Argument(help="One or more queries")],
    k: Annotated[int, typer.Option("-k", help="Hits per query")] = 10,
    mode: Annotated[
        str | None, typer.Option(help=" | ".join(MODES) + " (default: dense, or multivector on a multi-vector index)")
    ] = None,
    fusion: Annotated[str, typer.Option(help="Modes of several channels: rrf | weighted")] = DEFAULT_FUSION,
    weight: Annotated[
        list[str] | None, typer.Option(help="A channel's weight in the fusion, e.g. bm25=2 (repeat)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of tables")] = False,
    rerank: Annotated[
        str | None, typer.Option(help="Rerank the hits with this causal LM (yes/no relevance; see `llembed rerank`)")
    ] = None,
    rerank_top: Annotated[int, typer.Option(help="With --rerank: how many search hits the reranker judges")] = 20,
    rerank_weight: Annotated[
        float, typer.Option(help="With --rerank: the reranker's share of the final score (1: its order alone)")
    ] = RERANK_WEIGHT,
) -> None:
    """Search an index from the command line (optionally retrieve, then rerank)."""
    from llembed.index import VectorIndex, rerank_hits

    if rerank_top <= 0:
        raise LlembedError(f"--rerank-top must be positive, not {rerank_top}")
    check_rerank_weight(rerank_weight)
    reranker = None
    if rerank is not None:
        from llembed.reranker import Reranker

        reranker = Reranker.from_pretrained(rerank, truncation=True)
    weights = _weights(weight) if weight else None
    # the request is checked against the index's manifest before the index and its model load
    available = VectorIndex.channels_of_manifest(VectorIndex.read_manifest(index))
    mode = mode or modes_of(available)[0]
    check_fusion(fusion, weights, channels_of(mode, available, index.name))
    loaded = VectorIndex.load(index)
    found = loaded.search(list(query), max(k, rerank_top) if reranker else k, mode, fusion, weights)
    if reranker is not None:
        found = [
            rerank_hits(reranker, text, hits[:rerank_top], k, weight=rerank_weight)
            for text, hits in zip(query, found, strict=True)
        ]
    for text, hits in zip(query, found, strict=True):
        if as_json:
            print(json.dumps({"query": text, "hits": [h.to_dict() for h in hits]}, ensure_ascii=False))
            continue
        how = mode + (f", {fusion}" if len(channels_of(mode)) > 1 else "")
        title = f"{text}  ({how}{f', top {rerank_top} reranked by {rerank}' if reranker else ''})"
        table = Table(title=escape(title))
        columns = ["rank", "score", *(["search rank"] if reranker else []), "id"]
        for column in columns + ["text" if not hits or hits[0].span is None else "best passage"]:
            table.add_column(column, overflow="fold")
        for rank, hit in enumerate(hits, start=1):
            shown = hit.text if hit.span is None else f"[{hit.span[0]}:{hit.span[1]}] {hit.passage}"
            searched = [str(hit.retrieval_rank)] if reranker else []
            table.add_row(str(rank), f"{hit.score:.4f}", *searched, escape(hit.id), escape(shown[:200]))
        out.print(table)


def _weights(items: list[str]) -> dict[str, float]:
    """``--weight dense=1 --weight bm25=2`` → ``{"dense": 1.0, "bm25": 2.0}``."""
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise LlembedError(f"--weight takes CHANNEL=NUMBER (e.g. bm25=2), not {item!r}") from None
    return weights


@handle_errors
def rerank_command(
    query: Annotated[str, typer.Argument(help="The query")],
    documents: Annotated[list[str] | None, typer.Argument(help="Documents to judge (or --input)")] = None,
    input: Annotated[
        Path | None, typer.Option(help="Documents from a file: .txt (a line each), .jsonl, .csv or .parquet")
    ] = None,
    column: Annotated[str, typer.Option(help="Text column/field of --input")] = "text",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    top_n: Annotated[int | None, typer.Option(help="Show the best N")] = None,
    task: Annotated[str | None, typer.Option(help="The instruction (default: general relevance)")] = None,
    rerank_prompt: Annotated[
        str | None, typer.Option(help="chat | plain | ab, or a template with {query} before {document}")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Exit early at this layer (logit lens)")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto | float32 | bfloat16")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """Score documents for a query with a causal LM's yes/no answer (logit difference; the probability beside it).
    Without --model or --recipe the shipped reranker (smollm2-135m-ql-reranker) judges."""
    from llembed.cli.common import layer_value
    from llembed.model_sources import default_reranker
    from llembed.reranker import Reranker
    from llembed.texts_io import read_texts

    if (documents and input) or not (documents or input):
        raise LlembedError("give the documents as arguments or with --input FILE (one of the two)")
    texts = list(documents) if documents else read_texts(input, column=column).texts
    fields = {"task": task, "rerank_prompt": rerank_prompt, "layer": layer_value(layer), "dtype": dtype}
    if model is None and recipe is None:
        model = default_reranker()  # the untrained default model's zero-shot answer only when named
    reranker = Reranker.from_pretrained(model, recipe=recipe, truncation=True, **{k: v for k, v in fields.items() if v})
    ranked = reranker.rank(query, texts, top_n=top_n, show_progress_bar=len(texts) > 64)
    if as_json:
        print(json.dumps({"query": query, "results": ranked}, ensure_ascii=False))
        return
    table = Table(title=escape(f"{query}  ({model or recipe or reranker})"))
    calibrated = reranker.recipe.rerank_calibration is not None
    for column_name in ("rank", "score", "p(relevant)" if calibrated else "p(yes)", "index", "document"):
        table.add_column(column_name, overflow="fold")
    probabilities = reranker.probabilities([hit["score"] for hit in ranked])
    for rank, (hit, probability) in enumerate(zip(ranked, probabilities, strict=True), start=1):
        shown = escape(texts[hit["index"]][:200])
        table.add_row(str(rank), f"{hit['score']:.3f}", f"{probability:.3f}", str(hit["index"]), shown)
    out.print(table)
