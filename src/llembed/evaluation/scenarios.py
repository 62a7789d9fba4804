"""The full suite's sections, one per scenario of the survey: what each measures, on which bundled data, with
which subsamples. Every section runs through the same :class:`AblationRunner`, so its cells are cached and a
run resumes where it stopped; :data:`SECTIONS` is the one list the CLI, the suite and the report read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from llembed.embedder import Embedder
from llembed.evaluation.ablation import AblationRunner, Cell
from llembed.evaluation.bundled import load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.datasets import Dataset, select_subsets
from llembed.recipe import Recipe

logger = logging.getLogger(__name__)

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
SCALING_MODELS = ["smollm2-135m", "gemma-3-270m"]
"""Decoders of different sizes that llembed can load offline (see ``model_sources.BUNDLED_MODELS``)."""
SCALING_LANGUAGES = ["deu-eng", "fra-eng", "cmn-eng", "swh-eng"]
DOMAINS = {  # bundled set → domain, for the domains × recipes heat map
    "aila-statutes": "legal (statutes)",
    "aila-casedocs": "legal (case documents)",
    "nfcorpus-preprocessed": "biomedical",
    "birco-arguana": "argument",
    "scifact": "scientific",
}


@dataclass
class Sizes:
    """How much of each set a full run embeds (the report says so next to every subsampled result)."""

    sick_pairs: int = 1000
    scifact_queries: int = 100
    scifact_documents: int = 1000
    long_queries: int = 20
    long_documents: int = 20
    long_window: int = 8192
    multilingual_pairs: int = 200
    xquad_queries: int = 110
    xquad_documents: int = 330
    code_queries: int = 200
    code_documents: int = 1000
    reasoning_queries: int = 15
    domain_queries: int = 25
    domain_documents: int = 200
    scaling_pairs: int = 300
    rerank_queries: int = 12
    rerank_retrieval_queries: int = 50
    rerank_top: int = 20


@dataclass
class Context:
    runner: AblationRunner
    base: Recipe
    minilm: Embedder | None
    sizes: Sizes
    grid: dict
    models: dict[str, dict] = field(default_factory=dict)
    """Per model of the scaling section: parameters, hidden size, layers."""

    def baseline(self, dataset: Dataset, bm25: bool = False) -> None:
        if self.minilm is not None:
            self.runner.run_baseline(dataset, self.minilm, "all-MiniLM-L6-v2")
        if bm25 and dataset.type in ("retrieval", "reranking"):
            self.runner.run_baseline(dataset, "bm25", "BM25 (bm25s)")


def renamed(dataset: Dataset, suffix: str) -> Dataset:
    """A subsample under its own name, so it never shares a table (or a cache entry) with another cut."""
    return dataclasses.replace(dataset, name=f"{dataset.name} [{suffix}]")


# ---------------------------------------------------------------------------------------------- sections
def similarity(ctx: Context) -> None:
    """Sentence similarity and the MTEB-style panel: the prompt × pooling × layer grid on STS, then the best STS
    recipe and the default on classification, clustering, pair classification and reranking; SciFact dense,
    sparse and hybrid."""
    s = ctx.sizes
    sets = [load_bundled("stsbenchmark"), subsample_pairs(load_bundled("sick"), s.sick_pairs)]
    sets.append(load_bundled("sts17-en-en"))
    for dataset in sets:
        ctx.runner.run_grid(ctx.grid, dataset, ctx.base)
        ctx.baseline(dataset)
    scifact = subsample_retrieval(load_bundled("scifact"), s.scifact_queries, s.scifact_documents)
    lexical = ctx.base.replace(prompt="prompteol", pooling="last", layer=-1, exclude_prompt=False, bidirectional=False)
    ctx.runner.run_lexical(scifact, lexical.replace(truncation=True, max_length=512))
    ctx.baseline(scifact, bm25=True)
    best = best_sts_recipe(ctx)
    for name in OTHER_SETS:
        dataset = load_bundled(name)
        for recipe in [best] + ([ctx.base] if ctx.base != best else []):
            ctx.runner.run_grid({}, dataset, recipe)
        ctx.baseline(dataset, bm25=True)


def long_documents(ctx: Context) -> None:
    """Long documents: cut at 256 / 512 tokens, or chunked (``mean``: chunks embedded alone; ``late``: chunks
    pooled from the whole document's states, also with bidirectional attention), on AILA case documents
    (median ~4,000 tokens) and SciFact abstracts."""
    s = ctx.sizes
    aila = renamed(subsample_retrieval(load_bundled("aila-casedocs"), s.long_queries, s.long_documents), "long")
    scifact = subsample_retrieval(load_bundled("scifact"), s.scifact_queries // 2, s.scifact_documents // 3)
    scifact = renamed(scifact, "long")
    window = min(s.long_window, ctx.runner.embedder.backbone.max_positions)
    configs = {
        "cut 256": {"truncation": True, "max_length": 256},
        "cut 512": {"truncation": True, "max_length": 512},
        "mean": {"chunking": "mean", "chunk_tokens": 256, "max_length": 512},
        "late": {"chunking": "late", "chunk_tokens": 256, "max_length": window},
    }
    for dataset, extra in ((aila, {}), (scifact, {"late bidirectional": {**configs["late"], "bidirectional": True}})):
        for config in {**configs, **extra}.values():
            ctx.runner.run_grid({"pooling": ["last", "mean"]}, dataset, ctx.base.replace(**config))
        ctx.baseline(dataset, bm25=True)


def multilingual(ctx: Context) -> None:
    """Multilingual and cross-lingual: Tatoeba bitext mining (14 languages), STS-B in 10 languages, the
    non-English STS17 tracks, and XQuAD-R (a question in one of 11 languages, the answer sentence in all)."""
    s = ctx.sizes
    sets = [
        load_bundled("tatoeba"),
        subsample_pairs(load_bundled("stsb-multi-mt"), s.multilingual_pairs),
        load_bundled("sts17-multilingual"),
        subsample_retrieval(load_bundled("xquad-r"), s.xquad_queries, s.xquad_documents),
    ]
    for dataset in sets:
        ctx.runner.run_grid({"prompt": ["none", "prompteol"], "pooling": ["last", "mean"]}, dataset, ctx.base)
        ctx.baseline(dataset)


def code(ctx: Context) -> None:
    """Code search: CoSQA (a web query → the Python function that answers it) as retrieval and as labelled pairs;
    plain text, PromptEOL and a code-aware instruction for queries (documents stay plain code)."""
    s = ctx.sizes
    cosqa = subsample_retrieval(load_bundled("cosqa"), s.code_queries, s.code_documents)
    for dataset in (cosqa, load_bundled("cosqa-pairs")):
        grid = {"prompt": ["none", "prompteol", "instruction"], "pooling": ["last", "mean"]}
        ctx.runner.run_grid(grid, dataset, ctx.base.replace(truncation=True, max_length=512))
        ctx.baseline(dataset, bm25=True)


def reasoning(ctx: Context) -> None:
    """Reasoning-aware queries: the BIRCO sets (complex, multi-facet objectives) with the plain query and with
    "think, then embed" (the model writes a rationale first); the generation cost is in the efficiency columns."""
    s = ctx.sizes
    base = ctx.base.replace(truncation=True, max_length=512)
    for name in ("birco-arguana", "birco-clinical-trial", "birco-relic"):
        dataset = renamed(subsample_retrieval(load_bundled(name), s.reasoning_queries, 0), "reasoning")
        for think in (None, "self"):
            try:
                ctx.runner.run_grid({"pooling": ["last", "mean"]}, dataset, base.replace(think=think))
            except Exception as exc:  # a model without a chat template cannot think: say so, go on
                if think is None:
                    raise
                logger.warning("think, then embed skipped on %s: %s", dataset.name, exc)
        ctx.baseline(dataset, bm25=True)


def domains(ctx: Context) -> None:
    """Domain-specific retrieval (legal, biomedical, argument, scientific): pooling and dense vs sparse vs hybrid,
    every document cut at 512 tokens."""
    s = ctx.sizes
    base = ctx.base.replace(truncation=True, max_length=512)
    for name in DOMAINS:
        dataset = renamed(subsample_retrieval(load_bundled(name), s.domain_queries, s.domain_documents), "domains")
        ctx.runner.run_grid({"pooling": ["mean", "weighted_mean"]}, dataset, base)
        ctx.runner.run_lexical(dataset, base)
        ctx.baseline(dataset, bm25=True)


def scaling(ctx: Context) -> None:
    """Scaling: the same two recipes on every decoder available offline, on a small panel (STS-B, SciFact,
    Tatoeba in four languages, 300 pairs each): quality against parameters and milliseconds per text."""
    panel = [
        renamed(subsample_pairs(load_bundled("stsbenchmark"), 500), "scaling"),
        renamed(subsample_retrieval(load_bundled("scifact"), 40, 100), "scaling"),
        renamed(
            subsample_pairs(select_subsets(load_bundled("tatoeba"), SCALING_LANGUAGES), ctx.sizes.scaling_pairs),
            "scaling",
        ),  # fmt: skip
    ]
    here = ctx.runner.embedder
    for model in dict.fromkeys([str(here.recipe.model), *SCALING_MODELS]):
        try:
            embedder = (
                here if model == str(here.recipe.model) else Embedder.from_pretrained(model, dtype=ctx.base.dtype)
            )
        except Exception as exc:  # a model whose package is not installed is one point fewer: say so
            logger.warning("scaling: %s not available (%s)", model, exc)
            continue
        backbone = embedder.backbone
        ctx.models[model] = {
            "parameters": sum(p.numel() for p in backbone.model.parameters()),
            "hidden": backbone.hidden_size,
            "layers": backbone.num_layers,
        }
        runner = AblationRunner(embedder, ctx.runner.out_dir, ctx.runner.batch_size, section="scaling")
        base = embedder.recipe.replace(truncation=True, max_length=192)
        for dataset in panel:
            for prompt, pooling in (("prompteol", ["last"]), ("none", ["mean"])):
                runner.run_grid({"pooling": pooling}, dataset, base.replace(prompt=prompt))
        ctx.runner.cells += runner.cells
        ctx.runner.computed += runner.computed
        ctx.runner.reused += runner.reused


def reranking(ctx: Context) -> None:
    """Rerankers from the same causal LM (its yes/no answer logits): the BIRCO candidate lists, at the final layer
    and exiting at two thirds of the depth, against the embedding recipe; and retrieve-then-rerank on SciFact
    (dense and hybrid top 100, the top 20 reranked), with what reranking adds per query."""
    s = ctx.sizes
    backbone = ctx.runner.embedder.backbone
    if not backbone.is_decoder:
        logger.warning("reranking skipped: %s is an encoder", ctx.base.model)
        return
    from llembed.reranker import Reranker

    judge = Recipe(model=ctx.base.model, adapter=ctx.base.adapter, dtype=ctx.base.dtype, truncation=True,
                   max_length=min(1024, backbone.max_positions))  # fmt: skip
    early = round(backbone.num_layers * 2 / 3)
    rerankers = [Reranker(backbone, judge), Reranker(backbone, judge.replace(layer=early))]
    base = ctx.base.replace(truncation=True, max_length=512)
    for name in ("birco-arguana", "birco-clinical-trial", "birco-relic"):
        dataset = renamed(subsample_retrieval(load_bundled(name), s.rerank_queries, 0), "reranking")
        ctx.runner.run_grid({}, dataset, base)
        for reranker in rerankers:
            ctx.runner.run_rerank(dataset, reranker)
        ctx.baseline(dataset, bm25=True)
    scifact = subsample_retrieval(load_bundled("scifact"), s.rerank_retrieval_queries, s.scifact_documents // 2)
    scifact = renamed(scifact, "reranking")
    ctx.runner.run_rerank(scifact, rerankers[0], base, s.rerank_top)
    ctx.baseline(scifact, bm25=True)


def best_sts_recipe(ctx: Context) -> Recipe:
    """The dense recipe with the best mean STS score over the similarity section's STS sets (a recipe missing
    one of them is not a candidate); the default recipe when no STS cell ran."""
    sts = [c for c in ctx.runner.cells if c.type == "sts" and c.variant == "dense" and c.section == "similarity"]
    if not sts:
        return ctx.base
    tasks = {c.task for c in sts}
    by_recipe: dict[str, dict[str, Cell]] = {}
    for cell in sts:
        by_recipe.setdefault(json.dumps(cell.recipe, sort_keys=True, default=str), {})[cell.task] = cell
    complete = [cells for cells in by_recipe.values() if set(cells) == tasks]
    best = max(complete, key=lambda cells: sum(c.main for c in cells.values()) / len(cells))
    recipe = next(iter(best.values())).recipe
    return ctx.base.replace(**{k: v for k, v in recipe.items() if k not in ("extra", "baseline")})


SECTIONS: dict[str, Callable[[Context], None]] = {
    "similarity": similarity,
    "long": long_documents,
    "multilingual": multilingual,
    "code": code,
    "reasoning": reasoning,
    "domains": domains,
    "scaling": scaling,
    "reranking": reranking,
}
"""The full suite's sections in the order they run (``llembed eval --suite full --section NAME`` picks some)."""


def section_summary(name: str) -> str:
    return " ".join((SECTIONS[name].__doc__ or "").split("\n\n")[0].split())
