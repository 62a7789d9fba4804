"""The ``llembed`` command line: thin typer commands over :class:`llembed.Embedder`.

Every recipe option has the same name as the Python keyword and YAML key (``--exclude-prompt`` ↔
``exclude_prompt``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llembed.errors import LlembedError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # llembed never downloads; fail fast instead of hanging
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="Turn any decoder-only LLM into a text-embedding model.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)

ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model folder, .gguf file, alias or cached hub id")]
RecipeOpt = Annotated[Path | None, typer.Option("--recipe", help="Recipe YAML/JSON; other flags override it")]
PromptOpt = Annotated[str | None, typer.Option(help="Prompt strategy (see `llembed strategies`) or a {text} template")]
PoolingOpt = Annotated[str | None, typer.Option(help="last | eos | mean | weighted_mean | first | max")]
LayerOpt = Annotated[str | None, typer.Option(help="Layer index (-1 = final), list '3,5' or slice '-4:'")]


def _layer(value: str | None):
    if value is None:
        return None
    if "," in value:
        return [int(part) for part in value.split(",")]
    try:
        return int(value)
    except ValueError:
        return value


def _recipe_overrides(**options) -> dict:
    return {key: value for key, value in options.items() if value is not None}


def load_embedder(model: str | None, recipe_path: Path | None, **options):
    from llembed import Embedder, Recipe

    recipe = Recipe.load(recipe_path) if recipe_path else Recipe()
    overrides = _recipe_overrides(**options)
    if model is not None:
        overrides["model"] = model
    return Embedder.from_recipe(recipe.replace(**overrides))


@app.command()
def embed(
    input: Annotated[Path, typer.Argument(help="Texts: .txt (a line each), .jsonl, .csv or .parquet")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Vectors: .npy or .parquet")],
    column: Annotated[str, typer.Option(help="Text column/field of .jsonl/.csv/.parquet input")] = "text",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    prompt: PromptOpt = None,
    pooling: PoolingOpt = None,
    layer: LayerOpt = None,
    task: Annotated[str | None, typer.Option(help="Task description for instruction prompts")] = None,
    side: Annotated[str, typer.Option(help="text | query | document")] = "text",
    bidirectional: Annotated[bool | None, typer.Option("--bidirectional/--causal")] = None,
    exclude_prompt: Annotated[bool | None, typer.Option("--exclude-prompt/--include-prompt")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto | float32 | bfloat16 | float16")] = None,
    max_length: Annotated[int | None, typer.Option(help="Max tokens per prompted text")] = None,
    truncation: Annotated[bool | None, typer.Option("--truncation/--no-truncation")] = None,
    normalize: Annotated[bool | None, typer.Option("--normalize/--no-normalize")] = None,
    truncate_dim: Annotated[int | None, typer.Option(help="Matryoshka: keep the first N dimensions")] = None,
    precision: Annotated[str | None, typer.Option(help="float32 | float16 | int8 | uint8 | binary | ubinary")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass")] = 32,
    save_recipe: Annotated[Path | None, typer.Option(help="Also write the recipe used here")] = None,
) -> None:
    """Embed a file of texts and write the vectors."""
    from llembed.texts_io import read_texts, write_vectors

    try:
        table = read_texts(input, column=column)
        embedder = load_embedder(
            model,
            recipe,
            prompt=prompt,
            pooling=pooling,
            layer=_layer(layer),
            task=task,
            bidirectional=bidirectional,
            exclude_prompt=exclude_prompt,
            dtype=dtype,
            max_length=max_length,
            truncation=truncation,
            normalize=normalize,
            truncate_dim=truncate_dim,
            precision=precision,
        )
        console.print(f"[bold]{embedder}[/bold]\n{len(table.texts)} texts from {input}")
        start = time.perf_counter()
        if side not in ("text", "query", "document"):
            raise LlembedError(f"--side must be text, query or document, not {side!r}")
        vectors = embedder.encode(table.texts, batch_size=batch_size, side=side, show_progress_bar=True)
        elapsed = time.perf_counter() - start
        write_vectors(output, vectors, table.ids)
        if save_recipe:
            embedder.recipe.save(save_recipe)
    except LlembedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    rate = len(table.texts) / elapsed if elapsed > 0 else float("inf")
    console.print(f"wrote {vectors.shape} {vectors.dtype} to {output} in {elapsed:.1f}s ({rate:.1f} texts/s)")


@app.command()
def strategies() -> None:
    """List prompt strategies and poolings, one line each."""
    from llembed.prompts import STRATEGIES

    out = Console()
    prompts = Table(title="prompt strategies (--prompt)", show_lines=False)
    for name in ("name", "what it does", "source"):
        prompts.add_column(name, overflow="fold")
    for strategy in STRATEGIES.values():
        prompts.add_row(strategy.name, strategy.summary, strategy.source)
    prompts.add_row("'…{text}…'", "your own template; {task} for instructions", "you")
    out.print(prompts)
    poolings = Table(title="poolings (--pooling)")
    poolings.add_column("name")
    poolings.add_column("what it does")
    for name, text in POOLING_SUMMARIES.items():
        poolings.add_row(name, text)
    out.print(poolings)


POOLING_SUMMARIES = {
    "last": "state of the last real token (left or right padding)",
    "eos": "append the EOS token if the tokenizer doesn't, pool its state",
    "mean": "average over tokens (only the text's with --exclude-prompt)",
    "weighted_mean": "SGPT position-weighted mean: later tokens weigh more",
    "first": "state of the first token (CLS of encoders)",
    "max": "element-wise max over tokens",
}


@app.command("export-st")
def export_st(
    output: Annotated[Path, typer.Argument(help="Folder to write")],
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    prompt: PromptOpt = None,
    pooling: PoolingOpt = None,
    task: Annotated[str | None, typer.Option(help="Task for instruction prompts")] = None,
) -> None:
    """Export a recipe as a sentence-transformers folder (where ST can express it)."""
    try:
        embedder = load_embedder(model, recipe, prompt=prompt, pooling=pooling, task=task, dtype="float32")
        path = embedder.save_sentence_transformers(output)
    except LlembedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"wrote sentence-transformers folder {path}")


def main() -> None:  # pragma: no cover - console entry point alias
    sys.exit(app())
