"""``llembed synth e5|gecko`` and ``llembed serve-generator``: thin commands over :mod:`llembed.synthesis`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llembed.cli.common import console, handle_errors
from llembed.errors import LlembedError

synth_app = typer.Typer(help="Write training data with an LLM (E5-Mistral and Gecko recipes).", no_args_is_help=True)

GeneratorOpt = Annotated[
    str | None, typer.Option("--generator", help="Local chat model (default: SmolLM2-135M-Instruct) or served name")
]
BaseUrlOpt = Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://host:8000/v1")]
KeyEnvOpt = Annotated[str, typer.Option(help="Environment variable holding the endpoint API key")]
FilterOpt = Annotated[
    str | None, typer.Option(help="Embedder for the consistency filter ('none' to skip; default: the default model)")
]


def _filter_embedder(name: str | None):
    if name == "none":
        return None
    from llembed import Embedder

    return Embedder.from_pretrained(name, truncation=True, max_length=256)


def _report(result) -> None:
    console.print(result.drops.summary())
    console.print(f"wrote {result.written} examples to {result.output}; sample sheet: {result.sheets[-1]}")


@synth_app.command("e5")
@handle_errors
def e5_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Training JSONL to write")],
    domain: Annotated[str, typer.Option(help="Domain to brainstorm tasks for, e.g. 'home cooking'")],
    kinds: Annotated[
        str, typer.Option(help="Comma-separated: retrieval,sts,classification")
    ] = "retrieval,sts,classification",
    tasks_per_kind: Annotated[int, typer.Option(help="Tasks brainstormed per kind")] = 5,
    examples_per_task: Annotated[int, typer.Option(help="Examples generated per task")] = 10,
    language: Annotated[str, typer.Option(help="Language of the examples")] = "English",
    max_attempts: Annotated[int, typer.Option(help="Tries per example before it is dropped")] = 3,
    generator: GeneratorOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: KeyEnvOpt = "OPENAI_API_KEY",
    filter_model: FilterOpt = None,
    top_k: Annotated[int, typer.Option(help="Consistency filter: positive must rank within the top k")] = 3,
    seed: Annotated[int, typer.Option(help="Sampling seed of a local generator")] = 0,
) -> None:
    """E5-Mistral style: brainstorm tasks for a domain, then write {query, positive, hard negative} examples."""
    from llembed.synthesis import E5Options, make_generator, run_e5
    from llembed.synthesis.e5 import KINDS

    chosen = tuple(k.strip() for k in kinds.split(",") if k.strip())
    unknown = set(chosen) - set(KINDS)
    if unknown or not chosen:
        raise LlembedError(f"--kinds must be among {', '.join(KINDS)}, not {kinds!r}")
    options = E5Options(domain, chosen, tasks_per_kind, examples_per_task, language, max_attempts)
    result = run_e5(
        make_generator(generator, base_url, api_key_env, seed),
        output,
        options,
        _filter_embedder(filter_model),
        top_k,
    )
    _report(result)


@synth_app.command("gecko")
@handle_errors
def gecko_command(
    corpus: Annotated[Path, typer.Argument(help="Your passages: .jsonl/.csv/.parquet/.txt (one per line)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Training JSONL to write")],
    column: Annotated[str, typer.Option(help="Text field of the corpus")] = "text",
    limit: Annotated[int | None, typer.Option(help="Use only the first N passages")] = None,
    candidates: Annotated[int, typer.Option(help="Passages retrieved per generated query")] = 4,
    negative_rank: Annotated[int, typer.Option(help="Rank (0-based, after LLM ranking) of the hard negative")] = 2,
    retriever: Annotated[
        str | None, typer.Option(help="Embedder retrieving candidates (default: default model)")
    ] = None,
    generator: GeneratorOpt = None,
    base_url: BaseUrlOpt = None,
    api_key_env: KeyEnvOpt = "OPENAI_API_KEY",
    filter_model: FilterOpt = None,
    top_k: Annotated[int, typer.Option(help="Consistency filter: positive must rank within the top k")] = 3,
    seed: Annotated[int, typer.Option(help="Sampling seed of a local generator")] = 0,
) -> None:
    """Gecko style: a query per passage, candidates retrieved and ranked by the LLM, best as positive."""
    from llembed import Embedder
    from llembed.synthesis import GeckoOptions, make_generator, run_gecko
    from llembed.texts_io import read_texts

    table = read_texts(corpus, column=column, id_column="_id" if corpus.suffix == ".jsonl" else "id")
    ids = table.ids or [str(i) for i in range(len(table.texts))]
    passages = dict(zip(map(str, ids), table.texts, strict=True))
    if limit:
        passages = dict(list(passages.items())[:limit])
    embedder = Embedder.from_pretrained(retriever, truncation=True, max_length=256)
    options = GeckoOptions(candidates=candidates, negative_rank=negative_rank)
    result = run_gecko(
        make_generator(generator, base_url, api_key_env, seed),
        output,
        passages,
        embedder,
        options,
        _filter_embedder(filter_model) if filter_model else embedder,
        top_k,
    )
    _report(result)


@handle_errors
def serve_generator_command(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Local chat model (default: SmolLM2)")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8001,
) -> None:
    """Serve a local chat model as an OpenAI-compatible /v1/chat/completions endpoint."""
    import uvicorn

    from llembed.synthesis import LocalGenerator
    from llembed.synthesis.chat_server import create_chat_app

    uvicorn.run(create_chat_app(LocalGenerator(model)), host=host, port=port)
