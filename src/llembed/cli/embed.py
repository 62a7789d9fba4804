"""``llembed embed``, ``llembed strategies``, ``llembed export-st`` and ``llembed distill-static``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llembed.cli.common import (
    PIPELINE_FLAGS,
    BatchSizeOpt,
    ModelOpt,
    RecipeOpt,
    console,
    handle_errors,
    load_embedder,
    out,
    recipe_flags,
)
from llembed.errors import InputError


@handle_errors
@recipe_flags()
def embed_command(
    input: Annotated[Path, typer.Argument(help="Texts: .txt (a line each), .jsonl, .csv or .parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Vectors: .npy or .parquet")],
    column: Annotated[str, typer.Option(help="Text column/field of .jsonl/.csv/.parquet input")] = "text",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    side: Annotated[str, typer.Option(help="text | query | document")] = "text",
    batch_size: BatchSizeOpt = 32,
    save_recipe: Annotated[Path | None, typer.Option(help="Also write the recipe used here")] = None,
    compile: Annotated[bool, typer.Option(help="torch.compile the model (minutes to compile; see the README)")] = False,
    recipe_fields: dict | None = None,
) -> None:
    """Embed a file of texts and write the vectors."""
    from llembed.embedder import SIDES
    from llembed.texts_io import check_output, read_texts, write_vectors

    # everything that can be refused is refused before the model loads and the texts are embedded
    if side not in SIDES:
        raise InputError(f"--side must be one of {', '.join(SIDES)}, not {side!r}")
    check_output(output)
    if save_recipe is not None and not save_recipe.parent.is_dir():
        raise InputError(f"--save-recipe {save_recipe}: the folder {save_recipe.parent} does not exist")
    table = read_texts(input, column=column)
    if not table.texts:
        raise InputError(f"{input} holds no texts to embed")
    embedder = load_embedder(model, recipe, **recipe_fields)
    if compile:
        embedder.backbone.compile()
    console.print(f"[bold]{embedder}[/bold]\n{len(table.texts)} texts from {input}")
    start = time.perf_counter()
    vectors = embedder.encode(table.texts, batch_size=batch_size, side=side, show_progress_bar=True)
    elapsed = time.perf_counter() - start
    write_vectors(output, vectors, table.ids)
    if save_recipe:
        embedder.recipe.save(save_recipe)
    rate = len(table.texts) / elapsed if elapsed > 0 else float("inf")
    console.print(f"wrote {vectors.shape} {vectors.dtype} to {output} in {elapsed:.1f}s ({rate:.1f} texts/s)")


def strategies_command() -> None:
    """List prompt strategies and poolings, one line each."""
    from llembed.pooling import POOLINGS
    from llembed.prompts import STRATEGIES

    prompts = Table(title="prompt strategies (--prompt)", show_lines=False)
    for name in ("name", "what it does", "source"):
        prompts.add_column(name, overflow="fold")
    for strategy in STRATEGIES.values():
        prompts.add_row(strategy.name, strategy.summary, strategy.source)
    prompts.add_row("'…{text}…'", "your own template; {task} for instructions", "you")
    out.print(prompts)
    poolings = Table(title="poolings (--pooling)")
    for name in ("name", "what it does", "sentence-transformers"):
        poolings.add_column(name)
    for pooling in POOLINGS.values():
        poolings.add_row(pooling.name, pooling.summary, pooling.st_name or "—")
    out.print(poolings)


@handle_errors
@recipe_flags("prompt", "pooling", "task", "exclude_prompt", "max_length", "normalize", "truncate_dim")
def export_st_command(
    output: Annotated[Path, typer.Argument(help="Folder to write")],
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    recipe_fields: dict | None = None,
) -> None:
    """Export a recipe as a sentence-transformers folder (where ST can express it)."""
    from llembed.integrations.sentence_transformers import export_sentence_transformers

    embedder = load_embedder(model, recipe, **recipe_fields, dtype="float32")
    path = export_sentence_transformers(embedder, output)
    console.print(f"wrote sentence-transformers folder {path}")
    if "TemplateTransformer" in (path / "modules.json").read_text(encoding="utf-8"):
        console.print("its template has words after the text: load it with trust_remote_code=True (llembed's module)")


@handle_errors
@recipe_flags(*PIPELINE_FLAGS)
def distill_static_command(
    output: Annotated[Path, typer.Argument(help="Folder to write (a sentence-transformers StaticEmbedding model)")],
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    dims: Annotated[int, typer.Option(help="Dimensions kept by PCA", min=1)] = 256,
    refine: Annotated[
        int, typer.Option(help="Then fit the table to the recipe's vectors of this many training texts", min=0)
    ] = 0,
    batch_size: BatchSizeOpt = 256,
    recipe_fields: dict | None = None,
) -> None:
    """Distil a model + recipe into a static model: one vector per token, a text the mean of its tokens'."""
    from llembed.static_distill import distill_static

    if output.exists() and not output.is_dir():
        raise InputError(f"{output} is a file: give a folder to write the static model to")
    embedder = load_embedder(model, recipe, **recipe_fields)
    console.print(f"[bold]{embedder}[/bold]\nembedding {len(embedder.tokenizer):,} vocabulary tokens")
    start = time.perf_counter()
    path = distill_static(embedder, output, dims=dims, batch_size=batch_size, show_progress_bar=True, refine=refine)
    console.print(
        f"wrote static model {path} in {time.perf_counter() - start:.0f}s: llembed embed -m {path}, "
        f"or SentenceTransformer({str(path)!r})"
    )
