"""Evaluate a :class:`~llembed.Reranker`: on a reranking set it orders each query's own candidates; on a retrieval
set it reorders a first stage's top ``k`` (retrieve, then rerank) and the rest keep their first-stage order, so
nDCG@10 before and after compare the same candidates. Cost is the reranker's own: seconds per query (the latency
it adds), documents and tokens per second, and how much of the prompt the cached query head saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from llembed.embedder import Embedder
from llembed.evaluation.evaluate import TaskResult, lexical_and_fused, similarities, task_vectors
from llembed.evaluation.measure import measure
from llembed.evaluation.metrics import rank_documents, retrieval_scores
from llembed.evaluation.tasks import Task
from llembed.evaluation.tasks.reranking import RerankingTask
from llembed.evaluation.tasks.retrieval import TOP_K, RetrievalTask
from llembed.fusion import RERANK_WEIGHT, blend_rerank, check_rerank_weight
from llembed.reranker import Reranker

RERANK_TOP = 20
"""Documents of a first stage the reranker judges by default (a CPU judges ~20 passages a second)."""


def rerank_variant(first_stage: str, top: int, weight: float = RERANK_WEIGHT) -> str:
    blended = f", blended {weight:g}" if weight != 1.0 else ""
    return f"{first_stage} → rerank top {top}{blended}"


def rerank_top(
    order: Sequence[str],
    top: int | None,
    judge: Callable[[list[str]], Sequence[float]],
    first_stage: Callable[[str], float] | None = None,
    weight: float = RERANK_WEIGHT,
) -> list[str]:
    """``order`` (document ids, best first) with its first ``top`` (``None``: all) reordered by ``judge``'s scores
    of them (blended at ``weight`` with ``first_stage``'s score of each id, when given), best first, ties in their
    first-stage order; the rest keep their place below."""
    head = list(order[:top])
    scores = judge(head)
    if first_stage is not None:
        scores = blend_rerank([first_stage(d) for d in head], scores, weight)
    return [head[i] for i in sorted(range(len(head)), key=lambda i: -scores[i])] + list(order[len(head) :])


def evaluate_reranker(
    reranker: Reranker,
    task: Task,
    first_stages: Mapping[str, np.ndarray] | None = None,
    top: int = RERANK_TOP,
    batch_size: int = 32,
    show_progress_bar: bool = True,
    weight: float = RERANK_WEIGHT,
) -> list[TaskResult]:
    """The reranker's scores on ``task``: each retriever of ``first_stages`` (variant → its queries × documents
    scores, e.g. from :func:`llembed.evaluation.evaluate.similarities`) reranked at its top ``top`` (scores blended
    with the first stage's at ``weight``, :func:`llembed.fusion.blend_rerank`); on a reranking task without
    ``first_stages``, all of each query's candidates."""
    weight = check_rerank_weight(weight)
    if isinstance(task, RerankingTask) and not first_stages:
        return [_rerank_candidates(reranker, task, batch_size, show_progress_bar)]
    if isinstance(task, RerankingTask):
        return [
            _rerank_candidates(reranker, task, batch_size, show_progress_bar, (variant, scores, top), weight)
            for variant, scores in first_stages.items()
        ]
    if not isinstance(task, RetrievalTask):
        raise ValueError(f"a reranker scores reranking and retrieval sets, not {task.type}")
    if not first_stages:
        raise ValueError("retrieve, then rerank needs a first stage's scores")
    if top <= 0:
        raise ValueError(f"top must be positive, not {top}")
    return [
        _rerank_retrieved(reranker, task, variant, scores, top, batch_size, show_progress_bar, weight)
        for variant, scores in first_stages.items()
    ]


def _instruction(reranker: Reranker, task: Task) -> str | None:
    # the dataset's own task description, unless the reranker's recipe names one
    return None if reranker.recipe.task else task.dataset.meta.get("instruction")


def _rerank_candidates(
    reranker: Reranker,
    task: RerankingTask,
    batch_size: int,
    progress: bool,
    first_stage: tuple[str, np.ndarray, int] | None = None,
    weight: float = RERANK_WEIGHT,
) -> TaskResult:
    """Each query's candidates ordered by the reranker; with ``first_stage`` (variant, queries × candidates
    scores, top) only that stage's top candidates are reranked and placed above the rest, kept in its order."""
    dataset = task.dataset
    wanted = {doc for candidates in dataset.qrels.values() for doc in candidates}
    column = {doc: i for i, doc in enumerate(d for d in dataset.corpus if d in wanted)}
    similarity = np.zeros((len(dataset.queries), len(column)), dtype=np.float32)
    cost = _Cost()
    for row, (query, text) in enumerate(tqdm(dataset.queries.items(), desc="reranking", disable=not progress)):
        candidates = list(dataset.qrels[query])
        top = stage_score = None
        if first_stage is not None:  # the first stage's order; its top ones go to the reranker
            order = np.argsort(-first_stage[1][row, [column[d] for d in candidates]], kind="stable")
            candidates, top = [candidates[i] for i in order], first_stage[2]
            stage_score = lambda doc, row=row: first_stage[1][row, column[doc]]  # noqa: E731
        ranked = rerank_top(candidates, top, lambda head, text=text: cost.run(
            reranker, text, [dataset.corpus[d] for d in head], _instruction(reranker, task), batch_size),
            stage_score, weight)  # fmt: skip
        similarity[row, [column[d] for d in ranked]] = np.arange(len(ranked), 0, -1, dtype=np.float32)  # ranks
    variant = "rerank" if first_stage is None else rerank_variant(first_stage[0], first_stage[2], weight)
    return TaskResult(task.name, task.type, task.score_similarity(similarity), cost.efficiency(len(dataset.queries)),
                      variant, dataset.subsample_note)  # fmt: skip


def _rerank_retrieved(
    reranker: Reranker,
    task: RetrievalTask,
    variant: str,
    first_stage: np.ndarray,
    top: int,
    batch_size: int,
    progress: bool,
    weight: float = RERANK_WEIGHT,
) -> TaskResult:
    dataset = task.dataset
    column = {doc: i for i, doc in enumerate(dataset.corpus)}
    query_ids = list(dataset.queries)
    ranked = rank_documents(first_stage, list(dataset.corpus), TOP_K)
    cost = _Cost()
    reranked = {}
    rows = tqdm(list(enumerate(zip(query_ids, ranked, strict=True))), desc="reranking", disable=not progress)
    for row, (query, docs) in rows:
        reranked[query] = rerank_top(docs, top, lambda head, query=query: cost.run(
            reranker, dataset.queries[query], [dataset.corpus[d] for d in head], _instruction(reranker, task),
            batch_size), lambda doc, row=row: first_stage[row, column[doc]], weight)  # fmt: skip
    found = retrieval_scores(reranked, dataset.qrels, (10, 100))
    keep = {name: found[name] for name in ("ndcg_at_10", "map_at_10", "mrr_at_10", "recall_at_100")}
    scores = {"main": keep[task.main_metric], **keep}
    efficiency = cost.efficiency(len(query_ids))
    named = rerank_variant(variant, top, weight)
    return TaskResult(task.name, task.type, scores, efficiency, named, dataset.subsample_note)


def evaluate_with_reranker(
    embedder: Embedder,
    reranker: Reranker,
    task: Task,
    batch_size: int = 32,
    sparse: bool = False,
    top: int = RERANK_TOP,
    bm25: bool = False,
    weight: float = RERANK_WEIGHT,
) -> list[TaskResult]:
    """The embedder's rows (dense; with ``sparse`` / ``bm25`` also those channels and their fusions), then the
    reranker's: on a retrieval set, dense (and hybrid, and dense+bm25) retrieval each reranked at the top ``top``;
    on a reranking set, all the candidates, and the embedder's top ``top`` of them."""
    dense, lexical, efficiency = task_vectors(embedder, task, batch_size, sparse)
    note = task.dataset.subsample_note
    results = [TaskResult(task.name, task.type, task.score(dense), efficiency.to_dict(), "dense", note)]
    if sparse or bm25:
        results += lexical_and_fused(task, dense, lexical, efficiency.to_dict(), bm25)
    first_stages = None
    if isinstance(task, RetrievalTask):
        found = similarities(task, dense, lexical, bm25)
        first_stages = {v: found[v] for v in ("dense", "hybrid", "dense+bm25") if v in found}
    results = results + evaluate_reranker(reranker, task, first_stages, top, batch_size, weight=weight)
    if isinstance(task, RerankingTask):  # and the embedder's order of the candidates, its top reranked
        dense_order = {"dense": similarities(task, dense)["dense"]}
        results += evaluate_reranker(reranker, task, dense_order, top, batch_size, weight=weight)
    return results


class _Cost:
    """What the reranker spent, summed over queries."""

    def __init__(self) -> None:
        self.documents = self.tokens = self.computed = self.truncated = 0
        self.seconds = self.peak_rss_mb = 0.0

    def run(self, reranker: Reranker, query: str, documents: list[str], task: str | None, batch_size: int):
        with measure() as cost:
            started = time.perf_counter()
            scores = reranker.score(query, documents, task=task, batch_size=batch_size, show_progress_bar=False)
            self.seconds += time.perf_counter() - started
        stats = reranker.last_stats
        self.documents += len(documents)
        self.tokens += int(stats["tokens"])
        self.computed += int(stats["computed_tokens"])
        self.truncated += int(stats["truncated"])
        self.peak_rss_mb = max(self.peak_rss_mb, cost.peak_rss_mb)
        return scores

    def efficiency(self, queries: int) -> dict:
        return {
            "texts": self.documents,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "peak_rss_mb": self.peak_rss_mb,
            "truncated": self.truncated,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else 0.0,
            "ms_per_text": 1000 * self.seconds / self.documents if self.documents else 0.0,
            "ms_per_query": 1000 * self.seconds / queries if queries else 0.0,
            "computed_share": self.computed / self.tokens if self.tokens else 0.0,
        }
