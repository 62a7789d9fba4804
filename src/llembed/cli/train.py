"""``llembed train``, ``llembed mine-negatives`` and ``llembed decontaminate``: thin commands over
:mod:`llembed.training` and :mod:`llembed.evaluation.decontamination`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from llembed.cli.common import BatchSizeOpt, ModelOpt, RecipeOpt, console, handle_errors, load_embedder, out
from llembed.errors import InputError


@handle_errors
def train_command(
    config: Annotated[Path, typer.Argument(help="Training config (YAML), see llembed.training.TrainConfig")],
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in output_dir")] = False,
    output_dir: Annotated[str | None, typer.Option(help="Override the config's output_dir")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Override the config's max_steps")] = None,
) -> None:
    """Tune an embedder (contrastive LoRA, distillation, MNTP or SimCSE). Runs under torchrun too."""
    from llembed.training import train

    result = train(config, resume=resume, output_dir=output_dir, max_steps=max_steps)
    if result.recipe_path is None:  # not the main process
        return
    table = Table(title=f"trained {result.steps} steps in {result.seconds / 60:.1f} min")
    table.add_column("step", justify="right")
    table.add_column("loss", justify="right")
    shown = sorted({0, len(result.losses) // 2, len(result.losses) - 1}) if result.losses else []
    for index in shown:
        table.add_row(str(index + 1), f"{result.losses[index]:.4f}")
    out.print(table)
    console.print(f"tuned embedder: {result.recipe_path}  (llembed eval --recipe {result.recipe_path})")


@handle_errors
def mine_command(
    data: Annotated[Path, typer.Argument(help="Training JSONL (query, positive, …)")],
    output: Annotated[Path, typer.Argument(help="JSONL to write, with the negatives added")],
    corpus: Annotated[Path | None, typer.Option(help="Passages to mine from (.txt/.jsonl/.csv/.parquet)")] = None,
    column: Annotated[str, typer.Option(help="Text field of --corpus")] = "text",
    model: ModelOpt = None,
    recipe: RecipeOpt = None,
    bm25: Annotated[bool, typer.Option("--bm25", help="Retrieve with BM25 instead of an embedder")] = False,
    num_negatives: Annotated[int, typer.Option(help="Negatives to add per example")] = 3,
    skip_top: Annotated[int, typer.Option(help="Ignore this many top-ranked candidates")] = 0,
    max_positive_ratio: Annotated[
        float, typer.Option(help="Skip candidates scoring ≥ this × the positive's score (0 = off)")
    ] = 0.95,
    replace: Annotated[bool, typer.Option(help="Replace existing negatives instead of adding to them")] = False,
    batch_size: BatchSizeOpt = 32,
) -> None:
    """Mine hard negatives with an embedder or BM25 and write them into the training JSONL."""
    from llembed.texts_io import read_texts
    from llembed.training.data import load_examples, write_examples
    from llembed.training.mining import mine_hard_negatives

    examples = load_examples(data)
    passages = read_texts(corpus, column=column).texts if corpus else None
    retriever = "bm25" if bm25 else load_embedder(model, recipe)
    mined, report = mine_hard_negatives(
        examples,
        retriever,
        passages,
        num_negatives=num_negatives,
        skip_top=skip_top,
        max_positive_ratio=max_positive_ratio or None,
        replace_existing=replace,
        batch_size=batch_size,
    )
    write_examples(output, mined)
    console.print(report.summary())
    console.print(f"wrote {output}")


@handle_errors
def decontaminate_command(
    data: Annotated[list[Path], typer.Argument(help="Training files: JSONL examples, or .txt / JSONL sentences")],
    held_out: Annotated[
        list[str] | None,
        typer.Option(help="Evaluation set to check against (repeat): bundled (all), a bundled name or a folder"),
    ] = None,
    json_output: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here")] = None,
    all_parts: Annotated[bool, typer.Option(help="List clean parts too, not only those with an overlap")] = False,
) -> None:
    """How many evaluation texts a training set holds, exactly and normalised (case, Unicode, whitespace).

    Exit status 1 when a scored item (a test query, document, pair or text) is found: a leak."""
    import json

    from llembed.evaluation.decontamination import ContaminationReport, TrainingTexts, check, load_held_out
    from llembed.io_utils import atomic_write_text
    from llembed.training.data import load_examples, load_sentences

    training = TrainingTexts()
    for path in data:
        if path.suffix == ".txt":
            training.add(load_sentences(path))
        else:
            try:
                examples = load_examples(path)
            except InputError:  # not examples: sentences (a "text" field per line)
                training.add(load_sentences(path))
                continue
            training.add_examples(examples)
    report = check(training, load_held_out(held_out or ["bundled"]))
    if json_output is not None:
        atomic_write_text(json_output, json.dumps(report.to_dict(), indent=1) + "\n")
    shown = report.overlaps if all_parts else [o for o in report.overlaps if o.normalized]
    out.print(ContaminationReport(shown).table(f"evaluation texts found in {', '.join(map(str, data))}"))
    checked = len({o.dataset for o in report.overlaps})
    if report.leaks:
        console.print(f"[red]{len(report.leaks)} leak(s)[/red] in {checked} evaluation sets:\n{report.summary()}")
        raise typer.Exit(1)
    console.print(f"no scored evaluation item found in the training data ({checked} evaluation sets checked)")
