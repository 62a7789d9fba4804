"""Issue 28's comparison: retrieve, then rerank the top 20, on SciFact, NFCorpus and the BIRCO candidate lists.

    .venv/bin/python examples/compare_rerank.py [--rerankers zero-shot smollm2-135m-reranker]
        [--retrievers smollm2-135m-tuned] [--sets SciFact NFCorpus*]

- First stages: each retriever's dense ranking and its fusion with BM25 (weighted, the index's default), every
  set in full, documents cut at 256 tokens as in ``compare_retrieval.py``; on a BIRCO set, the retriever's order
  of each query's candidate list. Their scores are computed once and kept in ``--work`` (a later reranker reuses
  them).
- Each reranker judges each first stage's top 20 per query; the rest keep their place, so before and after
  rank the same documents. ``zero-shot`` is the bundled default model's own yes/no answer (what ``/v1/rerank``
  answered with before a trained reranker shipped). A (query, document) score does not depend on what it is
  batched with, so scores are cached per pair: dense and fused top 20s share most documents, and a killed run
  resumes.
- Reported: nDCG@10 (SciFact, NFCorpus) or MAP (BIRCO) before and after, and the reranker's milliseconds per
  query (20 documents) on this CPU; with ``--blend``, also the reranker's scores blended with the first stage's
  at each weight given (``llembed.fusion.blend_rerank``; the same pair scores, so at no extra cost).
Writes ``<out>/cells.json`` (as cells finish), ``compare.md`` and ``compare.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from llembed import Embedder, Reranker  # noqa: E402
from llembed.backbone import cpu_name  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.evaluation.evaluate import similarities, task_vectors  # noqa: E402
from llembed.evaluation.metrics import rank_documents, retrieval_scores  # noqa: E402
from llembed.evaluation.rerank_eval import rerank_top  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.evaluation.tasks.reranking import RerankingTask  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
SETS = {
    "SciFact": "scifact",
    "NFCorpus*": "nfcorpus-preprocessed",
    "ArguAna*": "birco-arguana",
    "Clinical-Trial*": "birco-clinical-trial",
    "Relic*": "birco-relic",
}
MODES = ("dense", "dense+bm25")
TOP = 20
DOCUMENT_TOKENS = 256
RERANK_TOKENS = 512
"""Query, prompt and document together, for the reranker (documents cut to fit, as the server does)."""
ZERO_SHOT = "zero-shot"


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def load_reranker(name: str) -> Reranker:
    model = None if name == ZERO_SHOT else name
    return Reranker.from_pretrained(model, truncation=True, max_length=RERANK_TOKENS)


class LazyReranker:
    """A reranker loaded at its first new pair: cells from cached pair scores need no model."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loaded: Reranker | None = None

    def score(self, *args, **kwargs) -> list[float]:
        self.loaded = self.loaded or load_reranker(self.name)
        return self.loaded.score(*args, **kwargs)


class FirstStages:
    """Each (retriever, set)'s queries × documents scores by mode, computed once and kept as ``.npz``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.embedders: dict[str, Embedder] = {}

    def get(self, retriever: str, column: str, task) -> dict[str, np.ndarray]:
        path = self.work / "first-stage" / slug(retriever) / f"{slug(column)}.npz"
        if path.is_file():
            with np.load(path) as stored:
                return {mode: stored[slug(mode)] for mode in MODES}
        if retriever not in self.embedders:
            self.embedders[retriever] = Embedder.from_pretrained(retriever).replace(
                truncation=True, max_length=DOCUMENT_TOKENS
            )
        dense, _, _ = task_vectors(self.embedders[retriever], task, 32)
        found = similarities(task, dense, None, bm25=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, **{slug(mode): found[mode].astype(np.float32) for mode in MODES})
        os.replace(temporary, path)
        return {mode: found[mode] for mode in MODES}


class PairScores:
    """A reranker's score per (query, document) on one set, and the seconds its new scores took; saved as it
    goes, so a killed run resumes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        self.scores: dict[str, dict[str, float]] = stored.get("scores", {})
        self.seconds: float = stored.get("seconds", 0.0)
        self.pairs: int = stored.get("pairs", 0)

    def judge(
        self, reranker: Reranker | LazyReranker, queries: dict[str, str], query_id: str, docs: dict[str, str], task=None
    ):
        """``reranker``'s scores of ``docs`` (id → text) for query ``query_id``, new pairs only computed."""
        query = queries[query_id]
        known = self.scores.setdefault(query_id, {})
        new = [d for d in docs if d not in known]
        if new:
            started = time.perf_counter()
            found = reranker.score(query, [docs[d] for d in new], task=task, show_progress_bar=False)
            self.seconds += time.perf_counter() - started
            self.pairs += len(new)
            known.update(zip(new, found, strict=True))
        return [known[d] for d in docs]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"scores": self.scores, "seconds": self.seconds, "pairs": self.pairs}
        atomic_write_text(self.path, json.dumps(payload))

    @property
    def ms_per_query(self) -> float:
        return 1000 * self.seconds / self.pairs * TOP if self.pairs else 0.0


def ranked_by(scores: np.ndarray, ids: list[str]) -> list[list[str]]:
    return rank_documents(scores, ids, len(ids))


def rerank_retrieval(task, stage: np.ndarray, judge, weight: float) -> tuple[float, float]:
    """(nDCG@10 of the first stage, after reranking its top 20 with the reranker's share ``weight``)."""
    dataset = task.dataset
    column = {doc: i for i, doc in enumerate(dataset.corpus)}
    first = dict(zip(dataset.queries, ranked_by(stage, list(dataset.corpus)), strict=True))
    after = {}
    for row, (query, docs) in enumerate(tqdm(first.items(), desc="reranking", leave=False)):
        after[query] = rerank_top(docs, TOP, lambda head, q=query: judge(q, {d: dataset.corpus[d] for d in head}),
                                  lambda doc, row=row: stage[row, column[doc]], weight)  # fmt: skip
    before = retrieval_scores({q: d[:1000] for q, d in first.items()}, dataset.qrels)["ndcg_at_10"]
    return before, retrieval_scores({q: d[:1000] for q, d in after.items()}, dataset.qrels)["ndcg_at_10"]


def rerank_candidates(task: RerankingTask, stage: np.ndarray, judge, weight: float) -> tuple[float, float]:
    """(MAP of the first stage's order of each candidate list, after reranking its top 20 with the reranker's
    share ``weight``)."""
    dataset = task.dataset
    wanted = {doc for candidates in dataset.qrels.values() for doc in candidates}
    column = {doc: i for i, doc in enumerate(d for d in dataset.corpus if d in wanted)}
    after = np.zeros_like(stage)
    for row, query in enumerate(tqdm(dataset.queries, desc="reranking", leave=False)):
        candidates = list(dataset.qrels[query])
        order = [candidates[i] for i in np.argsort(-stage[row, [column[d] for d in candidates]], kind="stable")]
        ranking = rerank_top(order, TOP, lambda head, q=query: judge(q, {d: dataset.corpus[d] for d in head}),
                             lambda doc, row=row: stage[row, column[doc]], weight)  # fmt: skip
        after[row, [column[d] for d in ranking]] = np.arange(len(ranking), 0, -1)
    return task.score_similarity(stage)["main"], task.score_similarity(after)["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rerankers", nargs="+", default=[ZERO_SHOT], help=f"aliases, runs, or {ZERO_SHOT!r}")
    parser.add_argument("--retrievers", nargs="+", default=["smollm2-135m-tuned"])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "rerank-panel")
    parser.add_argument("--work", type=Path, default=Path("runs") / "rerank-panel", help="first stages, pair scores")
    parser.add_argument("--blend", nargs="*", type=float, default=[0.2], help="the reranker's shares to blend at")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="first stages, in this order")
    parser.add_argument("--queries", type=int, help="rerank only each set's first N queries (a sample: say so)")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N queries (e.g. those a blend weight "
                        "was chosen on), before --queries")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cells_file = args.out / "cells.json"
    cells: dict[str, dict[str, float]] = json.loads(cells_file.read_text()) if cells_file.is_file() else {}

    def keep(row: str, column: str, value: float) -> None:
        cells.setdefault(row, {})[column] = value
        atomic_write_text(cells_file, json.dumps(cells, indent=2))

    stages = FirstStages(args.work)
    for reranker_name in args.rerankers:
        reranker = LazyReranker(reranker_name)
        for column in args.sets:
            full = make_task(load_bundled(SETS[column]))
            # the first N queries in file order (the first stage's first N rows); it still ranks the whole corpus
            task = sampled(full, args.queries, args.skip) if args.queries or args.skip else full
            instruction = task.dataset.meta.get("instruction")
            pairs = PairScores(args.work / "scores" / slug(reranker_name) / f"{slug(column)}.json")
            for retriever in args.retrievers:
                for mode in args.modes:
                    row = f"{retriever} · {mode}"
                    for weight in (1.0, *args.blend):
                        blended = f", blended {weight:g}" if weight != 1.0 else ""
                        after_row = f"{row} → {reranker_name} top {TOP}{blended}"
                        if column in cells.get(after_row, {}):
                            continue
                        rows = slice(args.skip, args.skip + len(task.dataset.queries))
                        stage = stages.get(retriever, column, full)[mode][rows]
                        judge = functools.partial(pairs.judge, reranker, task.dataset.queries, task=instruction)
                        rerank = rerank_candidates if isinstance(task, RerankingTask) else rerank_retrieval
                        before, after = rerank(task, stage, judge, weight)
                        pairs.save()
                        keep(row, column, before)
                        keep(after_row, column, after)
                        if weight == 1.0:
                            keep(f"{reranker_name} ms per query", column, pairs.ms_per_query)
                        print(f"{after_row:<60} {column:<16} {before:6.2f} → {after:6.2f}", flush=True)
    write_table(args, cells)


def sampled(task, count: int | None, skip: int = 0):
    """The task on ``count`` queries (all: ``None``) after the first ``skip`` (and their judgements); the corpus
    whole."""
    keep = list(task.dataset.queries)[skip : None if count is None else skip + count]
    dataset = dataclasses.replace(
        task.dataset,
        queries={q: task.dataset.queries[q] for q in keep},
        qrels={q: task.dataset.qrels[q] for q in keep},
        subsample_note=f"queries {skip + 1}–{skip + len(keep)}",
    )
    return make_task(dataset)


def write_table(args, cells: dict[str, dict[str, float]]) -> None:
    columns = list(SETS)
    metric = {c: "nDCG@10" if SETS[c] in ("scifact", "nfcorpus-preprocessed") else "MAP" for c in columns}
    lines = [
        "| first stage → reranker | " + " | ".join(f"{c} ({metric[c]})" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for row, scores in cells.items():
        if row.endswith("ms per query"):
            continue
        base = row.split(" → ")[0]
        values = []
        for c in columns:
            if c not in scores:
                values.append("–")
            elif " → " in row and c in cells.get(base, {}):
                values.append(f"{scores[c]:.2f} ({scores[c] - cells[base][c]:+.2f})")
            else:
                values.append(f"{scores[c]:.2f}")
        lines.append(f"| {row} | " + " | ".join(values) + " |")
    cost = [f"| {row[: -len(' ms per query')]} | " + " | ".join(f"{s[c]:.0f}" if c in s else "–" for c in columns)
            + " |" for row, s in cells.items() if row.endswith("ms per query")]  # fmt: skip
    notes = [
        "",
        f"Reranker milliseconds per query ({TOP} documents, query and document cut at {RERANK_TOKENS} tokens), "
        f"measured on {cpu_name()} ({os.cpu_count()} cores):",
        "",
        "| reranker | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        *cost,
        "",
        f"First stages over every set in full, documents cut at {DOCUMENT_TOKENS} tokens; `dense+bm25` is weighted "
        f"min-max fusion, half and half. Each reranker judges a first stage's top {TOP}; the rest keep their place. "
        "*NFCorpus is the original preprocessed release; ArguAna, Clinical-Trial and Relic are BIRCO's candidate "
        "lists (MAP over each query's candidates). `blended W`: the reranker's share W of each document's final "
        "score, the first stage's the rest, each min-max normalised over the top "
        f"{TOP} (`llembed.fusion.blend_rerank`); the weights were tried on these same queries."
        + (
            f" **A sample**: each set's first {args.queries} queries (in file order) are scored and reranked; "
            "the first stage still ranks the whole corpus."
            if args.queries and not args.skip
            else ""
        )
        + (
            f" **Held out**: the first {args.skip} queries (in file order), on which the blend weights were chosen, "
            "are left out; the rest are scored and reranked."
            if args.skip
            else ""
        ),
    ]
    table = "\n".join(lines + notes) + "\n"
    atomic_write_text(args.out / "compare.md", table)
    atomic_write_text(args.out / "compare.json", json.dumps(cells, indent=2))
    print("\n" + table)


if __name__ == "__main__":
    main()
