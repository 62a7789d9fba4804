"""``llembed embed-corpus``: a thin command over :func:`llembed.corpus.embed_corpus`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llembed.cli.common import BatchSizeOpt, ModelOpt, RecipeOpt, console, handle_errors, recipe_flags
from llembed.errors import InputError


@handle_errors
@recipe_flags()
def embed_corpus_command(
    inputs: Annotated[
        list[Path], typer.Argument(help="INPUT… OUTPUT: .jsonl/.parquet files or folders, then the output folder")
    ],
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    text_field: Annotated[str, typer.Option(help="Text field/column")] = "text",
    id_field: Annotated[str, typer.Option(help="Id field/column (rows without one get file:line ids)")] = "id",
    runner: Annotated[str, typer.Option(help="auto (Ray when installed) | ray | local (this process)")] = "auto",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of the local Ray (default: this machine's)")] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Ray actors, one model each (default: CPUs ÷ cpus-per-actor)")
    ] = None,
    cpus_per_actor: Annotated[float, typer.Option(help="CPUs (and torch threads) per actor")] = 1.0,
    batch_size: BatchSizeOpt = 32,
    shard_rows: Annotated[
        int, typer.Option(help="Rows per output parquet shard (the unit of resume and retry)")
    ] = 1000,
    sparse: Annotated[bool, typer.Option("--sparse/--dense-only", help="Also store LM-head sparse vectors")] = False,
    store_text: Annotated[bool, typer.Option("--store-text/--no-text", help="Keep the text beside its vector")] = True,
    on_error: Annotated[str, typer.Option(help="A malformed row: skip (report it, go on) | stop")] = "skip",
    chunks: Annotated[
        bool,
        typer.Option(
            "--chunks/--whole",
            help="One row per chunk (id, chunk, start, end, vector) by --chunk-tokens / --chunk-overlap; "
            "--chunking late gives chunks their document's context",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Start the output folder again even if its settings differ")] = False,
    recipe_fields: dict | None = None,
) -> None:
    """Embed a corpus into parquet shards (id, vector[, text, sparse]; --chunks: one row per chunk) on Ray Data;
    re-run to resume."""
    from llembed.corpus import ShardOptions, embed_corpus
    from llembed.resolve import resolve_recipe

    if len(inputs) < 2:
        raise InputError("give at least one INPUT and the OUTPUT folder")
    *sources, output = inputs
    options = ShardOptions(text_field, id_field, batch_size, sparse, store_text, on_error, chunks)
    summary = embed_corpus(
        sources,
        output,
        resolve_recipe(model, recipe, **recipe_fields),  # the workers load the model
        options,
        shard_rows=shard_rows,
        runner=runner,
        concurrency=concurrency,
        cpus_per_actor=cpus_per_actor,
        address=address,
        num_cpus=num_cpus,
        overwrite=overwrite,
    )
    table = Table(title=f"embed-corpus → {output}")
    for column in (
        "runner",
        "rows",
        "vectors",
        "bad rows",
        "empty",
        "truncated",
        "shards (skipped)",
        "seconds",
        "rows/s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        summary.runner,
        str(summary.rows),
        str(summary.vectors),
        str(summary.errors),
        str(summary.empty),
        str(summary.truncated),
        f"{summary.shards} ({summary.shards_skipped})",
        f"{summary.seconds:.1f}",
        f"{summary.rows_per_second:.1f}",
    )
    console.print(table)
    if summary.errors:
        first = json.loads((Path(output) / "errors.jsonl").read_text(encoding="utf-8").splitlines()[0])
        console.print(
            f"[yellow]{summary.errors} malformed rows skipped[/yellow] (first: {first}); all in {output}/errors.jsonl"
        )
    if summary.duplicate_ids:
        console.print(
            f"[red]{len(summary.duplicate_ids)} duplicate ids[/red] in the input, e.g. {summary.duplicate_ids[:3]}: "
            "ids must be unique"
        )
        raise typer.Exit(1)
