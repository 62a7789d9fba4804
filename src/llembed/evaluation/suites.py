"""The quick and full evaluation suites over the bundled data (what ``llembed eval`` runs with no --data).

The quick suite is the prompt × pooling × layer grid on an STS-B sample plus a SciFact sample (minutes); the
full suite runs the sections of :mod:`llembed.evaluation.scenarios` (hours on two CPU cores; resumable).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from llembed.backbone import cpu_name
from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.evaluation.ablation import AblationRunner
from llembed.evaluation.bundled import load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.report import write_report
from llembed.evaluation.scenarios import SECTIONS, Context, Sizes

SUITES = ("quick", "full")
QUICK_PROMPTS = ["none", "prompteol", "pcoteol", "ke", "metaeol", "echo", "icl"]
QUICK_POOLINGS = ["last", "mean", "weighted_mean"]


@dataclass
class SuiteOptions:
    suite: str = "quick"
    sts_pairs: int = 200  # quick: STS-B test pairs sampled
    retrieval_queries: int = 40  # quick: SciFact queries sampled
    retrieval_documents: int = 100  # quick: random non-judged SciFact documents added to the judged ones
    max_document_tokens: int = 192  # quick: SciFact documents truncated to this many tokens
    grid: dict | None = None
    baselines: bool = True
    batch_size: int = 32
    sections: list[str] | None = None
    """Full suite: the sections to run (``None``: all of :data:`SECTIONS`, in order)."""
    sizes: Sizes = field(default_factory=Sizes)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise InputError(f"unknown suite {self.suite!r}; choose one of {', '.join(SUITES)}")
        unknown = [name for name in self.sections or [] if name not in SECTIONS]
        if unknown:
            raise InputError(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
        if self.sections and self.suite != "full":
            raise InputError("--section picks sections of the full suite: add --suite full")


def default_grid(embedder: Embedder) -> dict[str, list]:
    middle = embedder.backbone.num_layers // 2
    return {"prompt": QUICK_PROMPTS, "pooling": QUICK_POOLINGS, "layer": [-1, middle]}


def run_suite(embedder: Embedder, out_dir: str | Path, options: SuiteOptions) -> dict:
    """Run the suite, write the report, return the report's paths and the cells."""
    started = time.perf_counter()
    runner = AblationRunner(embedder, Path(out_dir), batch_size=options.batch_size)
    base = embedder.recipe.replace(dtype=embedder.backbone.dtype_name)
    grid = options.grid or default_grid(embedder)
    # the baseline truncates at its 256 tokens, as sentence-transformers does
    minilm = (
        Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True) if options.baselines else None
    )
    model = embedder.recipe.model if embedder.recipe.adapter is None else f"{embedder.recipe.model} + LoRA adapter"
    meta = {"model": model, "suite": options.suite}
    if options.suite == "quick":
        _quick(runner, base, grid, minilm, options)
    else:
        context = Context(runner, base, minilm, options.sizes, grid)
        sections = options.sections or list(SECTIONS)
        for name in sections:
            runner.section = name
            SECTIONS[name](context)
        meta |= {"sections": sections, "sizes": vars(options.sizes), "models": context.models}
    meta |= {
        "seconds": time.perf_counter() - started,
        "computed": runner.computed,
        "reused": runner.reused,
        "machine": f"{platform.machine()}, {cpu_name()}, dtype {base.dtype}",
        "options": {k: v for k, v in vars(options).items() if k not in ("grid", "sizes")},
        "grid": grid,
        "trained_on": trained_on(embedder.recipe),
    }
    paths = write_report(runner.cells, Path(out_dir), meta)
    return {"paths": paths, "cells": runner.cells, "meta": meta}


def _quick(runner: AblationRunner, base, grid: dict, minilm: Embedder | None, options: SuiteOptions) -> None:
    sts = subsample_pairs(load_bundled("stsbenchmark"), options.sts_pairs)
    retrieval = subsample_retrieval(load_bundled("scifact"), options.retrieval_queries, options.retrieval_documents)
    lexical = base.replace(prompt="prompteol", pooling="last", layer=-1, exclude_prompt=False, bidirectional=False)
    lexical = lexical.replace(max_length=options.max_document_tokens, truncation=True)
    runner.run_grid(grid, sts, base)
    if minilm:
        runner.run_baseline(sts, minilm, "all-MiniLM-L6-v2")
    runner.run_lexical(retrieval, lexical)
    if minilm:
        runner.run_baseline(retrieval, minilm, "all-MiniLM-L6-v2")
        runner.run_baseline(retrieval, "bm25", "BM25 (bm25s)")


def trained_on(recipe) -> str:
    """What a recipe's model was tuned on, for every results table: its adapter and the adapter run's training
    data (from the run's ``train_config.yaml``), or that it is training-free."""
    if recipe.adapter is None:
        return "nothing: every recipe is training-free"
    adapter = Path(recipe.adapter)
    if adapter.is_absolute() and adapter.is_relative_to(Path.cwd()):  # a shipped report names repo paths
        adapter = adapter.relative_to(Path.cwd())
    config = adapter.parent / "train_config.yaml"
    data = ""
    if config.is_file():
        import yaml

        files = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data") or []
        data = f", trained on {', '.join(map(str, files))}" if files else ""
    return f"the LoRA adapter {adapter}{data}; the all-MiniLM-L6-v2 and BM25 rows are not tuned here"


def report_from_cache(
    embedder_model: str, out_dir: str | Path, note: str | None = None, trained: str | None = None
) -> dict:
    """Write the report of an interrupted (or finished) suite from the cells its cache holds, computing nothing.

    Sections come in the order of :data:`SECTIONS`; ``note`` says what is missing (e.g. a section cut short);
    ``trained`` what the model was tuned on (default: training-free)."""
    import json

    from llembed.evaluation.ablation import Cell

    out_dir = Path(out_dir)
    cells = []
    for path in sorted((out_dir / "cache").glob("*.json")):
        try:
            cells.append(Cell(**json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, TypeError):
            continue  # a damaged entry is no result
    if not cells:
        raise InputError(f"{out_dir} holds no cached cells: run the suite first")
    present = {cell.section for cell in cells}
    sections = [name for name in SECTIONS if name in present]
    cells.sort(key=lambda c: (sections.index(c.section) if c.section in sections else len(sections), c.task))
    meta = {
        "model": embedder_model,
        "suite": "full" if sections else "quick",
        "sections": sections,
        "seconds": 0.0,
        "computed": 0,
        "reused": len(cells),
        "machine": f"{platform.machine()}, {cpu_name()}",
        "trained_on": trained or "nothing: every recipe is training-free",
        "note": note,
    }
    return {"paths": write_report(cells, out_dir, meta), "cells": cells, "meta": meta}
