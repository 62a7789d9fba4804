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
    compile: Annotated[
        bool, typer.Option(help="torch.compile the model: minutes to compile, pays on big files")
    ] = False,
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
        if compile:
            embedder.backbone.compile()
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


@app.command("eval")
def eval_command(
    data: Annotated[str | None, typer.Option(help="Dataset folder/file, or a bundled name; none → the suite")] = None,
    type: Annotated[
        str | None, typer.Option("--type", help="sts|retrieval|classification|pair|clustering|reranking")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table | json (scores on stdout)")] = "table",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    prompt: PromptOpt = None,
    pooling: PoolingOpt = None,
    layer: LayerOpt = None,
    task: Annotated[str | None, typer.Option(help="Task description for instruction prompts")] = None,
    bidirectional: Annotated[bool | None, typer.Option("--bidirectional/--causal")] = None,
    exclude_prompt: Annotated[bool | None, typer.Option("--exclude-prompt/--include-prompt")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto | float32 | bfloat16 | float16")] = None,
    max_length: Annotated[int | None, typer.Option(help="Max tokens per prompted text")] = None,
    truncation: Annotated[bool | None, typer.Option("--truncation/--no-truncation")] = None,
    sparse: Annotated[bool, typer.Option(help="Retrieval: also sparse (LM head) and hybrid scores")] = False,
    suite: Annotated[str, typer.Option(help="quick | full (without --data)")] = "quick",
    grid: Annotated[list[str] | None, typer.Option(help="field=v1,v2 (repeat) or a grid YAML file")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder (suite runs)")] = Path("llembed-eval"),
    sts_pairs: Annotated[int, typer.Option(help="Quick suite: STS-B test pairs sampled")] = 200,
    retrieval_queries: Annotated[int, typer.Option(help="Quick suite: SciFact queries sampled")] = 40,
    retrieval_documents: Annotated[int, typer.Option(help="Quick suite: random extra SciFact documents")] = 100,
    max_document_tokens: Annotated[int, typer.Option(help="Quick suite: SciFact document token cap")] = 192,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="MiniLM and BM25 rows")] = True,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass")] = 32,
) -> None:
    """Evaluate a recipe on a dataset, or (no --data) run the ablation suite and write its report."""
    import json as json_module

    from llembed.evaluation.bundled import DATA_DIR
    from llembed.evaluation.datasets import load_dataset
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.tasks import make_task

    if format not in ("table", "json"):
        console.print(f"[red]error:[/red] --format must be table or json, not {format!r}")
        raise typer.Exit(2)
    options = dict(
        prompt=prompt,
        pooling=pooling,
        layer=_layer(layer),
        task=task,
        bidirectional=bidirectional,
        exclude_prompt=exclude_prompt,
        dtype=dtype,
        max_length=max_length,
        truncation=truncation,
    )
    try:
        embedder = load_embedder(model, recipe, **options)
        if data is None:
            _run_suite(
                embedder,
                output,
                suite,
                grid,
                sts_pairs,
                retrieval_queries,
                retrieval_documents,
                max_document_tokens,
                baselines,
                batch_size,
                format,
            )
            return
        path = Path(data) if Path(data).exists() else DATA_DIR / data
        dataset = load_dataset(path, type=type)
        results = evaluate(embedder, make_task(dataset), batch_size=batch_size, sparse=sparse)
    except LlembedError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if format == "json":
        payload = {
            "model": embedder.recipe.model,
            "recipe": embedder.recipe.to_dict(),
            "dataset": dataset.name,
            "type": dataset.type,
            "results": [{"variant": r.variant, "scores": r.scores, "efficiency": r.efficiency} for r in results],
        }
        print(json_module.dumps(payload, indent=2))
        return
    table = Table(title=f"{dataset.name} ({dataset.type}) · {embedder!r}")
    table.add_column("variant")
    metrics = [k for k in results[0].scores if k != "main"]
    for name in metrics:
        table.add_column(name, justify="right")
    table.add_column("ms/text", justify="right")
    for result in results:
        table.add_row(
            result.variant,
            *[f"{result.scores[m]:.2f}" for m in metrics],
            f"{result.efficiency.get('ms_per_text', 0):.1f}",
        )
    Console().print(table)


def _run_suite(
    embedder,
    output,
    suite,
    grid,
    sts_pairs,
    retrieval_queries,
    retrieval_documents,
    max_document_tokens,
    baselines,
    batch_size,
    format,
) -> None:
    import json as json_module

    from llembed.evaluation.ablation import best_cells, parse_grid
    from llembed.evaluation.suites import SuiteOptions, run_suite

    options = SuiteOptions(
        suite=suite,
        sts_pairs=sts_pairs,
        retrieval_queries=retrieval_queries,
        retrieval_documents=retrieval_documents,
        max_document_tokens=max_document_tokens,
        grid=parse_grid(grid) if grid else None,
        baselines=baselines,
        batch_size=batch_size,
    )
    result = run_suite(embedder, output, options)
    best = best_cells(result["cells"])
    if format == "json":
        print(
            json_module.dumps(
                {"meta": result["meta"], "best": {t: {"recipe": c.label, "main": c.main} for t, c in best.items()}},
                indent=2,
                default=str,
            )
        )
        return
    out = Console()
    for task_name in dict.fromkeys(c.task for c in result["cells"]):
        cells = sorted((c for c in result["cells"] if c.task == task_name), key=lambda c: -c.main)
        table = Table(title=f"{task_name} — top recipes and baselines")
        for column in ("recipe", "variant", "main", "ms/text", "tokens/s"):
            table.add_column(column, justify="left" if column in ("recipe", "variant") else "right")
        shown = cells[:10] + [c for c in cells[10:] if c.variant in ("baseline", "sparse", "hybrid")]
        for cell in shown:
            style = "bold red" if best.get(task_name) is cell else None
            table.add_row(
                cell.label,
                cell.variant,
                f"{cell.main:.2f}",
                f"{cell.efficiency.get('ms_per_text', 0):.1f}",
                f"{cell.efficiency.get('tokens_per_s', 0):.0f}",
                style=style,
            )
        out.print(table)
    meta = result["meta"]
    console.print(f"{meta['computed']} cells computed, {meta['reused']} from cache, {meta['seconds']:.0f} s")
    console.print(f"report: {result['paths']['html']}  tables: {result['paths']['md']}")


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


from llembed.cli_corpus import embed_corpus_command  # noqa: E402
from llembed.cli_serve import index_app, search_command, serve_command  # noqa: E402
from llembed.cli_synth import serve_generator_command, synth_app  # noqa: E402  (commands registered below)
from llembed.cli_train import mine_command, train_command  # noqa: E402

app.command("train")(train_command)
app.command("mine-negatives")(mine_command)
app.add_typer(synth_app, name="synth")
app.command("serve-generator")(serve_generator_command)
app.command("serve")(serve_command)
app.add_typer(index_app, name="index")
app.command("search")(search_command)
app.command("embed-corpus")(embed_corpus_command)


def main() -> None:  # pragma: no cover - console entry point alias
    sys.exit(app())
