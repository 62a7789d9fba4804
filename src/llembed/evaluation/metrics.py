"""Evaluation metrics as MTEB computes them, on the 0–100 scale MTEB reports. Pure functions.

Retrieval follows trec_eval / pytrec_eval (what MTEB calls): linear-gain nDCG@k, MAP@k divided by the number
of relevant documents, a document is relevant when its qrel score is > 0, ties broken by document id
descending. Classification follows MTEB's protocol: 10 experiments, each training a logistic regression on
``samples_per_label`` examples per label drawn by a seeded shuffle.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

from llembed.output import cosine_matrix, cosine_rows


# ---------------------------------------------------------------------------------------------- STS
def sts_scores(embeddings1: np.ndarray, embeddings2: np.ndarray, gold: Sequence[float]) -> dict[str, float]:
    """Spearman (main) and Pearson of cosine similarity against gold scores, ×100."""
    cosine = cosine_rows(embeddings1, embeddings2)
    return {
        "cosine_spearman": 100 * float(scipy.stats.spearmanr(cosine, gold).statistic),
        "cosine_pearson": 100 * float(scipy.stats.pearsonr(cosine, gold).statistic),
    }


# ---------------------------------------------------------------------------------------------- bitext
def bitext_scores(source: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Bitext mining as MTEB's BitextMining: row i of ``source`` translates row i of ``target``; each source
    sentence is matched to its nearest target by cosine; F1 (main), precision and recall are sklearn's
    ``average="weighted"`` over the gold indices, accuracy the share matched right; ×100."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    gold = np.arange(len(source))
    predicted = cosine_matrix(source, target).argmax(axis=1)
    return {
        "f1": 100 * float(f1_score(gold, predicted, average="weighted", zero_division=0)),
        "precision": 100 * float(precision_score(gold, predicted, average="weighted", zero_division=0)),
        "recall": 100 * float(recall_score(gold, predicted, average="weighted", zero_division=0)),
        "accuracy": 100 * float(accuracy_score(gold, predicted)),
    }


# ---------------------------------------------------------------------------------------------- pairs
def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """sklearn's average precision (step-wise, ties grouped), ×100."""
    from sklearn.metrics import average_precision_score

    return 100 * float(average_precision_score(np.asarray(labels), np.asarray(scores)))


def pair_classification_scores(embeddings1: np.ndarray, embeddings2: np.ndarray, labels: Sequence[int]) -> dict:
    """AP of cosine, dot, euclidean and manhattan scores; ``max_ap`` (MTEB ≥ 1.12's main score) is the best."""
    a = np.asarray(embeddings1, dtype=np.float64)
    b = np.asarray(embeddings2, dtype=np.float64)
    scores = {
        "cosine_ap": average_precision(labels, cosine_rows(a, b)),
        "dot_ap": average_precision(labels, (a * b).sum(axis=1)),
        "euclidean_ap": average_precision(labels, -np.linalg.norm(a - b, axis=1)),
        "manhattan_ap": average_precision(labels, -np.abs(a - b).sum(axis=1)),
    }
    scores["max_ap"] = max(scores.values())
    return scores


# ---------------------------------------------------------------------------------------------- retrieval
def rank_documents(scores: np.ndarray, doc_ids: Sequence[str], top_k: int) -> list[list[str]]:
    """Per query, the ``top_k`` document ids by score, ties broken by id descending (as trec_eval)."""
    ids = np.asarray(doc_ids, dtype=object)
    order_by_id = np.argsort(ids.astype(str))[::-1]  # id descending
    ranked = []
    for row in np.asarray(scores):
        by_id = row[order_by_id]
        # stable sort on -score keeps the id-descending order among equal scores
        keep = np.argsort(-by_id, kind="stable")[:top_k]
        ranked.append([ids[order_by_id[i]] for i in keep])
    return ranked


def retrieval_scores(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k_values: Sequence[int] = (10, 100)
) -> dict[str, float]:
    """nDCG@k, MAP@k, MRR@k and Recall@k averaged over the judged queries in ``ranked``, ×100."""
    sums: dict[str, float] = defaultdict(float)
    queries = [q for q in ranked if q in qrels]
    for query in queries:
        judged = qrels[query]
        relevant = {doc for doc, rel in judged.items() if rel > 0}
        ideal = sorted((rel for rel in judged.values() if rel > 0), reverse=True)
        docs = list(ranked[query])
        for k in k_values:
            top = docs[:k]
            dcg = sum(
                judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(top) if judged.get(doc, 0) > 0
            )
            idcg = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(ideal[:k]))
            sums[f"ndcg_at_{k}"] += dcg / idcg if idcg else 0.0
            hits, precision_sum, first = 0, 0.0, 0.0
            for rank, doc in enumerate(top, start=1):
                if doc in relevant:
                    hits += 1
                    precision_sum += hits / rank
                    first = first or 1.0 / rank
            sums[f"map_at_{k}"] += precision_sum / len(relevant) if relevant else 0.0
            sums[f"mrr_at_{k}"] += first
            sums[f"recall_at_{k}"] += hits / len(relevant) if relevant else 0.0
    return {name: 100 * value / max(len(queries), 1) for name, value in sums.items()}


def reranking_map(candidate_scores: Sequence[np.ndarray], candidate_labels: Sequence[Sequence[int]]) -> dict:
    """MAP (main) and MRR@10 over each query's own candidate list, ×100."""
    aps, rrs = [], []
    for scores, labels in zip(candidate_scores, candidate_labels, strict=True):
        labels = np.asarray(labels)
        if labels.sum() == 0:
            continue
        order = np.argsort(-np.asarray(scores), kind="stable")
        ranked = labels[order] > 0
        hits = np.cumsum(ranked)
        ranks = np.arange(1, len(ranked) + 1)
        aps.append(float((hits / ranks)[ranked].sum() / ranked.sum()))
        first = int(np.argmax(ranked)) + 1
        rrs.append(1.0 / first if first <= 10 else 0.0)
    return {"map": 100 * float(np.mean(aps)), "mrr_at_10": 100 * float(np.mean(rrs))}


# ---------------------------------------------------------------------------------------------- classification
def mteb_undersample(labels: Sequence, samples_per_label: int, n_experiments: int, seed: int = 42) -> list[list[int]]:
    """MTEB's training subsets: each experiment reshuffles the previous order with ``RandomState(seed)`` and keeps
    the first ``samples_per_label`` indices of each label."""
    order = list(range(len(labels)))
    subsets = []
    for _ in range(n_experiments):
        np.random.RandomState(seed).shuffle(order)
        counts: dict = defaultdict(int)
        chosen = []
        for index in order:
            if counts[labels[index]] < samples_per_label:
                chosen.append(index)
                counts[labels[index]] += 1
        subsets.append(chosen)
    return subsets


def classification_scores(
    train_embeddings: np.ndarray,
    train_labels: Sequence,
    test_embeddings: np.ndarray,
    test_labels: Sequence,
    samples_per_label: int = 8,
    n_experiments: int = 10,
    seed: int = 42,
) -> dict[str, float]:
    """Accuracy (main) and macro-F1 of logistic regression (max_iter=100), averaged over MTEB's experiments."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train_labels = list(train_labels)
    accuracies, f1s = [], []
    for subset in mteb_undersample(train_labels, samples_per_label, n_experiments, seed):
        model = LogisticRegression(max_iter=100)
        model.fit(train_embeddings[subset], [train_labels[i] for i in subset])
        predicted = model.predict(test_embeddings)
        accuracies.append(accuracy_score(test_labels, predicted))
        f1s.append(f1_score(test_labels, predicted, average="macro"))
    return {"accuracy": 100 * float(np.mean(accuracies)), "f1": 100 * float(np.mean(f1s))}


# ---------------------------------------------------------------------------------------------- clustering
def clustering_v_measure(embeddings: np.ndarray, labels: Sequence, seed: int = 42) -> dict[str, float]:
    """V-measure of mini-batch k-means with k = number of labels (MTEB's clustering evaluator), ×100."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    k = len(set(labels))
    model = MiniBatchKMeans(n_clusters=k, batch_size=500, n_init="auto", random_state=seed)
    predicted = model.fit_predict(np.asarray(embeddings))
    return {"v_measure": 100 * float(v_measure_score(labels, predicted))}
