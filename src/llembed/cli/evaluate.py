"""``llembed eval``: one recipe on one dataset, or the ablation suite with its report."""

from __future__ import annotations

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
from llembed.extras import MissingExtraError
from llembed.fusion import DEFAULT_FUSION, RERANK_WEIGHT, check_fusion, check_rerank_weight
from llembed.multivector import UNITS

try:  # the help names the choices when the eval extra is installed (the command says what to install if not)
    from llembed.evaluation.datasets import TASK_TYPES
    from llembed.evaluation.scenarios import SECTIONS
except MissingExtraError:
    TASK_TYPES, SECTIONS = (), {}  # type: ignore[assignment]


@handle_errors
@recipe_flags(*PIPELINE_FLAGS)
def eval_command(
    data: Annotated[str | None, typer.Option(help="Dataset folder/file, or a bundled name; none → the suite")] = None,
    type: Annotated[str | None, typer.Option("--type", help=" | ".join(TASK_TYPES))] = None,
    subset: Annotated[
        list[str] | None,
        typer.Option(help="Only these subsets (languages) of a multilingual set, e.g. deu-eng (repeat or a,b)"),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table | json (scores on stdout)")] = "table",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    sparse: Annotated[bool, typer.Option(help="Retrieval: also sparse (LM head) and hybrid scores")] = False,
    bm25: Annotated[
        bool, typer.Option(help="Retrieval: also BM25 and its fusions with dense (dense+bm25, dense+sparse+bm25)")
    ] = False,
    fusion: Annotated[
        list[str] | None, typer.Option(help="How modes of several channels fuse: rrf | weighted (repeat for both)")
    ] = None,
    multivector: Annotated[
        str | None, typer.Option(help="Retrieval: also late interaction (MaxSim) over token | chunk vectors")
    ] = None,
    suite: Annotated[str, typer.Option(help="quick | full (without --data)")] = "quick",
    section: Annotated[
        list[str] | None,
        typer.Option(help="Full suite: only these sections (repeat): " + ", ".join(SECTIONS)),
    ] = None,
    grid: Annotated[list[str] | None, typer.Option(help="field=v1,v2 (repeat) or a grid YAML file")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Report folder (suite runs)")] = Path("llembed-eval"),
    sts_pairs: Annotated[int, typer.Option(help="Quick suite: STS-B test pairs sampled", min=1)] = 200,
    retrieval_queries: Annotated[int, typer.Option(help="Quick suite: SciFact queries sampled", min=1)] = 40,
    retrieval_documents: Annotated[int, typer.Option(help="Quick suite: random extra SciFact documents", min=0)] = 100,
    max_document_tokens: Annotated[int, typer.Option(help="Quick suite: SciFact document token cap", min=1)] = 192,
    baselines: Annotated[bool, typer.Option("--baselines/--no-baselines", help="MiniLM and BM25 rows")] = True,
    rerank: Annotated[
        str | None,
        typer.Option(
            help="With --data: also rerank with this causal LM (a reranking set's candidates, or retrieval's "
            "top --rerank-top)"
        ),
    ] = None,
    rerank_top: Annotated[int, typer.Option(help="With --rerank on retrieval: first-stage hits reranked")] = 20,
    rerank_layer: Annotated[str | None, typer.Option(help="With --rerank: exit early at this layer")] = None,
    rerank_weight: Annotated[
        float, typer.Option(help="With --rerank: the reranker's share of the final score (1: its order alone)")
    ] = RERANK_WEIGHT,
    batch_size: BatchSizeOpt = 32,
    recipe_fields: dict | None = None,
) -> None:
    """Evaluate a recipe on a dataset, or (no --data) run the ablation suite and write its report."""
    import json as json_module

    from llembed.evaluation.ablation import parse_grid
    from llembed.evaluation.bundled import DATA_DIR
    from llembed.evaluation.datasets import load_dataset, select_subsets
    from llembed.evaluation.evaluate import evaluate
    from llembed.evaluation.suites import SuiteOptions
    from llembed.evaluation.tasks import make_task

    if format not in ("table", "json"):
        raise InputError(f"--format must be table or json, not {format!r}")
    if rerank is not None and data is None:
        raise InputError("--rerank evaluates a reranker on one dataset: add --data (a reranking or retrieval set)")
    if rerank_top <= 0:
        raise InputError(f"--rerank-top must be positive, not {rerank_top}")
    check_rerank_weight(rerank_weight)
    if multivector is not None and multivector not in UNITS:
        raise InputError(f"--multivector must be one of {', '.join(UNITS)}, not {multivector!r}")
    if multivector is not None and (data is None or rerank is not None):
        raise InputError("--multivector scores one retrieval set: add --data, leave out --rerank")
    fusions = tuple(dict.fromkeys(name for item in fusion or [DEFAULT_FUSION] for name in item.split(",") if name))
    for name in fusions:
        check_fusion(name, None, ("dense",))
    # the data (or the suite's grid) is read, and any problem in it reported, before the model loads
    if data is None:
        suite_options = SuiteOptions(
            suite=suite,
            sts_pairs=sts_pairs,
            retrieval_queries=retrieval_queries,
            retrieval_documents=retrieval_documents,
            max_document_tokens=max_document_tokens,
            grid=parse_grid(grid) if grid else None,
            baselines=baselines,
            batch_size=batch_size,
            sections=[name for item in section or [] for name in item.split(",") if name] or None,
        )
        _run_suite(load_embedder(model, recipe, **recipe_fields), output, suite_options, format)
        return
    dataset = load_dataset(Path(data) if Path(data).exists() else DATA_DIR / data, type=type)
    if subset:
        dataset = select_subsets(dataset, [name for item in subset for name in item.split(",") if name])
    if rerank is not None and dataset.type not in ("reranking", "retrieval"):
        raise InputError(f"--rerank scores reranking and retrieval sets; {dataset.name} is {dataset.type}")
    embedder = load_embedder(model, recipe, **recipe_fields)
    if rerank is None:
        results = evaluate(embedder, make_task(dataset), batch_size, sparse, bm25, fusions, multivector)
    else:
        from llembed.cli.common import layer_value
        from llembed.evaluation.rerank_eval import evaluate_with_reranker
        from llembed.reranker import Reranker

        layer = {} if rerank_layer is None else {"layer": layer_value(rerank_layer)}
        reranker = Reranker.from_pretrained(rerank, truncation=True, **layer)
        task = make_task(dataset)
        results = evaluate_with_reranker(embedder, reranker, task, batch_size, sparse, rerank_top, bm25, rerank_weight)
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
    table.add_column("variant", no_wrap=True)
    metrics = [k for k in results[0].scores if k != "main"]
    for name in metrics:
        table.add_column(name, justify="right")
    for column in ("ms/text", "ms/query", "empty", "truncated"):
        table.add_column(column, justify="right")
    for result in results:
        per_query = result.efficiency.get("ms_per_query")
        table.add_row(
            result.variant,
            *[f"{result.scores[m]:.2f}" for m in metrics],
            f"{result.efficiency.get('ms_per_text', 0):.1f}",
            "" if per_query is None else f"{per_query:.0f}",
            str(result.efficiency.get("empty", 0)),
            str(result.efficiency.get("truncated", 0)),
        )
    out.print(table)


def _run_suite(embedder, output: Path, options, format: str) -> None:
    import json as json_module

    from llembed.evaluation.ablation import best_cells
    from llembed.evaluation.suites import run_suite

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
    for task_name in dict.fromkeys(c.task for c in result["cells"]):
        cells = sorted((c for c in result["cells"] if c.task == task_name), key=lambda c: -c.main)
        table = Table(title=f"{task_name} — top recipes and baselines")
        for column in ("recipe", "variant", "main", "ms/text", "tokens/s"):
            table.add_column(column, justify="left" if column in ("recipe", "variant") else "right")
        shown = cells[:10] + [c for c in cells[10:] if c.variant in ("baseline", "sparse", "hybrid", "dense+bm25")]
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
