"""The quick and full evaluation suites over the bundled data (what ``llembed eval`` runs with no --data)."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from llembed.backbone import cpu_name
from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.evaluation.ablation import AblationRunner
from llembed.evaluation.bundled import load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.report import write_report

SUITES = ("quick", "full")
QUICK_PROMPTS = ["none", "prompteol", "pcoteol", "ke", "metaeol", "echo", "icl"]
QUICK_POOLINGS = ["last", "mean", "weighted_mean"]
STS_SETS = ["stsbenchmark", "sick", "sts17-en-en"]
OTHER_SETS = [
    "twitter-semeval2015",
    "mrpc",
    "amazon-counterfactual-en",
    "emotion",
    "banking77",
    "banking77-clustering",
    "birco-arguana",
]


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

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise InputError(f"unknown suite {self.suite!r}; choose one of {', '.join(SUITES)}")


def default_grid(embedder: Embedder) -> dict[str, list]:
    middle = embedder.backbone.num_layers // 2
    return {"prompt": QUICK_PROMPTS, "pooling": QUICK_POOLINGS, "layer": [-1, middle]}


def run_suite(embedder: Embedder, out_dir: str | Path, options: SuiteOptions) -> dict:
    """Run the suite, write the report, return the report's paths and the cells."""
    started = time.perf_counter()
    runner = AblationRunner(embedder, Path(out_dir), batch_size=options.batch_size)
    base = embedder.recipe.replace(dtype=str(embedder.backbone.dtype).replace("torch.", ""))
    grid = options.grid or default_grid(embedder)
    # the baseline truncates at its 256 tokens, as sentence-transformers does
    minilm = (
        Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True) if options.baselines else None
    )
    lexical = base.replace(prompt="prompteol", pooling="last", layer=-1, exclude_prompt=False, bidirectional=False)

    if options.suite == "quick":
        sts = [subsample_pairs(load_bundled("stsbenchmark"), options.sts_pairs)]
        retrieval = subsample_retrieval(load_bundled("scifact"), options.retrieval_queries, options.retrieval_documents)
        lexical = lexical.replace(max_length=options.max_document_tokens, truncation=True)
        others = []
    else:  # "full" (SuiteOptions refuses other names)
        sts = [load_bundled(name) for name in STS_SETS]
        retrieval = load_bundled("scifact")
        lexical = lexical.replace(truncation=True, max_length=min(512, embedder.recipe.max_length or 512))
        others = [load_bundled(name) for name in OTHER_SETS]

    for dataset in sts:
        runner.run_grid(grid, dataset, base)
        if minilm:
            runner.run_baseline(dataset, minilm, "all-MiniLM-L6-v2")
    runner.run_lexical(retrieval, lexical)
    if minilm:
        runner.run_baseline(retrieval, minilm, "all-MiniLM-L6-v2")
        runner.run_baseline(retrieval, "bm25", "BM25 (bm25s)")
    if others:
        best_sts = max((c for c in runner.cells if c.type == "sts" and c.variant == "dense"), key=lambda c: c.main)
        for dataset in others:
            for recipe in {best_sts.label: best_sts.recipe, "default": base.to_dict()}.values():
                runner.run_grid({}, dataset, base.replace(**{k: v for k, v in recipe.items() if k != "extra"}))
            if minilm:
                runner.run_baseline(dataset, minilm, "all-MiniLM-L6-v2")
            if dataset.type == "reranking":
                runner.run_baseline(dataset, "bm25", "BM25 (bm25s)")

    meta = {
        "model": embedder.recipe.model,
        "suite": options.suite,
        "seconds": time.perf_counter() - started,
        "computed": runner.computed,
        "reused": runner.reused,
        "machine": f"{platform.machine()}, {cpu_name()}, dtype {base.dtype}",
        "options": {k: v for k, v in vars(options).items() if k != "grid"},
        "grid": grid,
    }
    paths = write_report(runner.cells, Path(out_dir), meta)
    return {"paths": paths, "cells": runner.cells, "meta": meta}
