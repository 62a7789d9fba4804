"""Evaluate one recipe on one task: embed what the task asks for, score it, and record what it cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from llembed.chunked import resolve_chunking
from llembed.embedder import Embedder, PoolSpec
from llembed.evaluation.measure import measure
from llembed.evaluation.tasks import Task
from llembed.extras import require
from llembed.fusion import DEFAULT_FUSION, MODES, fuse
from llembed.output import cosine_matrix

require("eval", "evaluation")  # scoring needs scikit-learn's metrics; reading sets and decontamination do not


@dataclass
class Efficiency:
    texts: int = 0
    tokens: int = 0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    empty: int = 0
    """Texts that were empty (embedded as the model sees an empty text, as mteb does)."""
    truncated: int = 0
    """Texts cut at the recipe's ``max_length`` (as mteb does)."""
    generated: int = 0
    """Queries a ``think`` generator wrote a rationale for (not found in its cache)."""
    generation_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def ms_per_text(self) -> float:
        return 1000 * self.seconds / self.texts if self.texts else 0.0

    def add(self, stats: dict, peak_rss_mb: float) -> None:
        self.texts += int(stats.get("texts", 0))
        self.tokens += int(stats.get("tokens", 0))
        self.seconds += float(stats.get("seconds", 0.0))
        self.empty += int(stats.get("empty", 0))
        self.truncated += int(stats.get("truncated", 0))
        self.generated += int(stats.get("generated", 0))
        self.generation_seconds += float(stats.get("generation_seconds", 0.0))
        self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb)

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s, "ms_per_text": self.ms_per_text}


@dataclass
class TaskResult:
    task: str
    type: str
    scores: dict[str, float]
    efficiency: dict = field(default_factory=dict)
    variant: str = "dense"
    note: str | None = None

    @property
    def main(self) -> float:
        return self.scores["main"]


def query_instruction(embedder: Embedder, task: Task) -> str | None:
    """What a task's queries are embedded with under instruction prompts: the dataset's task description, unless
    the recipe names its own."""
    return embedder.recipe.task or task.dataset.meta.get("instruction")


def pool_requests(
    embedder: Embedder, task: Task, specs: list[PoolSpec], batch_size: int = 32, memo=None
) -> tuple[dict[str, dict[PoolSpec, torch.Tensor]], Efficiency]:
    """Pooled vectors of every text the task asks for, per side and spec, with what the forward passes cost.

    ``memo`` (an ablation's ``SideMemo``) hands back a side already pooled under the same settings; its cost
    is counted again, as if it had been computed, so cells stay comparable."""
    efficiency = Efficiency()
    pooled = {}
    requests = task.requests()
    embedder = resolve_chunking(embedder, requests.get("document", []))  # ``auto``: chosen for this collection
    instruction = query_instruction(embedder, task)
    for side, texts in requests.items():
        found = memo.get(side, specs) if memo is not None else None
        if found is not None:
            pooled[side], stats, peak = found
            efficiency.add(stats, peak)
            continue
        with measure() as cost:
            # real data: empty texts stay and over-long ones are cut, as mteb scores them (and both are counted)
            pooled[side] = embedder.pool(
                texts, specs, side, instruction if side == "query" else None, batch_size, strict=False
            )
        efficiency.add(embedder.last_stats, cost.peak_rss_mb)
        if memo is not None:
            memo.put(side, pooled[side], dict(embedder.last_stats), cost.peak_rss_mb)
    return pooled, efficiency


def evaluate(
    embedder: Embedder,
    task: Task,
    batch_size: int = 32,
    sparse: bool = False,
    bm25: bool = False,
    fusions: tuple[str, ...] = (DEFAULT_FUSION,),
    multivector: str | None = None,
) -> list[TaskResult]:
    """Dense scores of ``embedder`` on ``task``; on a retrieval or reranking set, with ``sparse`` and ``bm25``
    also those channels alone and every search mode fusing them with dense (:data:`llembed.fusion.MODES`), under
    each of ``fusions`` (the first unnamed in the variant, the others as ``mode (fusion)``); with
    ``multivector`` (a unit of :data:`llembed.multivector.UNITS`) also late interaction over both sides' vectors
    of that unit (variant ``multivector (token)``, its own cost)."""
    dense, lexical, efficiency = task_vectors(embedder, task, batch_size, sparse)
    note = task.dataset.subsample_note
    results = [TaskResult(task.name, task.type, task.score(dense), efficiency.to_dict(), "dense", note)]
    if (sparse or bm25) and hasattr(task, "score_similarity"):
        results += lexical_and_fused(task, dense, lexical, efficiency.to_dict(), bm25, fusions)
    if multivector is not None:
        results.append(multivector_result(embedder, task, multivector, batch_size))
    return results


def multivector_result(embedder: Embedder, task: Task, unit: str, batch_size: int = 32) -> TaskResult:
    """Late interaction on a query/document task: both sides as vectors of ``unit``, scored by MaxSim."""
    from llembed.errors import InputError
    from llembed.multivector import embed_multivector, maxsim

    requests = task.requests()
    if set(requests) != {"query", "document"} or not hasattr(task, "score_similarity"):
        raise InputError(f"multi-vector scoring needs queries and documents; {task.name} is {task.type}")
    instruction = query_instruction(embedder, task)
    efficiency = Efficiency()
    found = {}
    for side, texts in requests.items():
        with measure() as cost:
            found[side] = embed_multivector(embedder, texts, unit, 1, side, instruction if side == "query" else None,
                                            batch_size)  # fmt: skip
        efficiency.add({**embedder.last_stats, "texts": len(texts)}, cost.peak_rss_mb)
    similarity = maxsim(found["query"], found["document"])
    scores = task.score_similarity(similarity)
    return TaskResult(task.name, task.type, scores, efficiency.to_dict(), f"multivector ({unit})",
                      task.dataset.subsample_note)  # fmt: skip


def task_vectors(embedder: Embedder, task: Task, batch_size: int = 32, sparse: bool = False):
    """(dense float vectors, sparse CSR vectors (empty without ``sparse``), cost), each by side."""
    pooled, efficiency = pool_requests(embedder, task, embedder.specs(sparse), batch_size)
    dense = {side: embedder.to_float(embedder.format(by_spec[embedder.spec])) for side, by_spec in pooled.items()}
    # sparse vectors are read off the same forward passes
    lexical = {side: embedder.sparse(by_spec) for side, by_spec in pooled.items()} if sparse else {}
    return dense, lexical, efficiency


def lexical_and_fused(
    task: Task,
    dense: dict,
    lexical: dict,
    efficiency: dict,
    bm25: bool = False,
    fusions: tuple[str, ...] = (DEFAULT_FUSION,),
) -> list[TaskResult]:
    """Every mode but ``dense`` that the channels at hand allow, scored (see :func:`evaluate`)."""
    found = similarities(task, dense, lexical, bm25, fusions)
    note = task.dataset.subsample_note
    return [
        TaskResult(task.name, task.type, task.score_similarity(scores), efficiency, variant, note)
        for variant, scores in found.items()
        if variant != "dense"
    ]


def similarities(
    task: Task,
    dense: dict,
    lexical: dict | None = None,
    bm25: bool = False,
    fusions: tuple[str, ...] = (DEFAULT_FUSION,),
) -> dict[str, np.ndarray]:
    """(queries × documents) scores by variant: ``dense`` cosine; with ``lexical`` vectors ``sparse`` dot
    products; with ``bm25`` BM25 over the task's texts; and each mode fusing them, per fusion method."""
    channels = {"dense": cosine_matrix(dense["query"], dense["document"])}
    if lexical:
        channels["sparse"] = (lexical["query"] @ lexical["document"].T).toarray()
    if bm25:
        from llembed.bm25 import bm25_scores

        requests = task.requests()
        channels["bm25"] = bm25_scores(requests["query"], requests["document"])
    found = dict(channels)
    for number, fusion in enumerate(fusions):
        for mode, needs in MODES.items():
            if len(needs) < 2 or mode == "dense+sparse" or not set(needs) <= set(channels):
                continue  # single channels are above; dense+sparse is ``hybrid`` under its old name
            name = mode if number == 0 else f"{mode} ({fusion})"
            found[name] = fuse({c: channels[c] for c in needs}, fusion)
    return found
