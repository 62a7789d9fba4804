"""Known-answer tests for every metric, against hand computations and against scipy / sklearn / pytrec_eval."""

import math

import numpy as np
import pytest
import scipy.stats

from llembed.evaluation import metrics


def test_sts_spearman_of_cosine():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])  # cosines 1, 0.707, 0, 1
    gold = [5.0, 3.0, 0.0, 4.0]
    scores = metrics.sts_scores(a, b, gold)
    # ranks of cosines [3.5, 2, 1, 3.5] vs gold [4, 2, 1, 3]: hand-computed Spearman = Pearson of the ranks
    expected = scipy.stats.pearsonr([3.5, 2, 1, 3.5], [4, 2, 1, 3]).statistic * 100
    assert scores["cosine_spearman"] == pytest.approx(expected)
    assert scores["cosine_spearman"] == pytest.approx(100 * 0.9486832980505138)


def test_pair_classification_average_precision_and_max():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = np.array([[1.0, 0.1], [0.0, 1.0], [1.0, 1.0]])
    labels = [1, 0, 0]
    scores = metrics.pair_classification_scores(a, b, labels)
    assert scores["cosine_ap"] == pytest.approx(100.0)  # the positive has the highest cosine
    # dot: 1, 0, 1 → positive ties with a negative: sklearn AP = precision 1/2 at recall 1
    assert scores["dot_ap"] == pytest.approx(50.0)
    assert scores["max_ap"] == max(
        scores["cosine_ap"], scores["dot_ap"], scores["euclidean_ap"], scores["manhattan_ap"]
    )


def test_retrieval_metrics_by_hand():
    qrels = {"q1": {"d1": 2, "d3": 1, "d9": 0}, "q2": {"d2": 1}}
    ranked = {"q1": ["d3", "d2", "d1", "d9"], "q2": ["d1", "d4"]}
    scores = metrics.retrieval_scores(ranked, qrels, (10, 100))
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert scores["ndcg_at_10"] == pytest.approx(100 * (dcg / idcg + 0) / 2)
    assert scores["map_at_10"] == pytest.approx(100 * ((1 / 1 + 2 / 3) / 2 + 0) / 2)
    assert scores["mrr_at_10"] == pytest.approx(100 * (1 + 0) / 2)
    assert scores["recall_at_100"] == pytest.approx(100 * (1 + 0) / 2)


def test_retrieval_metrics_agree_with_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(0)
    docs = [f"d{i}" for i in range(40)]
    qrels = {f"q{q}": {d: int(rng.integers(0, 3)) for d in rng.choice(docs, 6, replace=False)} for q in range(12)}
    scores = rng.normal(size=(12, 40)).round(1)  # rounding makes ties, broken by id as trec_eval does
    ranked = dict(zip(qrels, metrics.rank_documents(scores, docs, 1000), strict=True))
    run = {q: {d: float(scores[i, docs.index(d)]) for d in docs} for i, q in enumerate(qrels)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.10", "recall.100"})
    reference = evaluator.evaluate(run)
    ours = metrics.retrieval_scores(ranked, qrels, (10, 100))
    for ours_name, trec_name in (
        ("ndcg_at_10", "ndcg_cut_10"),
        ("map_at_10", "map_cut_10"),
        ("recall_at_100", "recall_100"),
    ):
        expected = 100 * np.mean([reference[q][trec_name] for q in qrels])
        assert ours[ours_name] == pytest.approx(expected, abs=1e-6), ours_name


def test_reranking_map_and_mrr():
    scores = [np.array([0.9, 0.8, 0.1]), np.array([0.2, 0.5])]
    labels = [[0, 1, 1], [1, 0]]
    result = metrics.reranking_map(scores, labels)
    assert result["map"] == pytest.approx(100 * ((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)
    assert result["mrr_at_10"] == pytest.approx(100 * (1 / 2 + 1 / 2) / 2)


def test_mteb_undersampling_matches_mtebs_own_code():
    mteb_classification = pytest.importorskip("mteb.abstasks.classification")
    from datasets import Dataset

    labels = [i % 5 for i in range(200)]
    ours = metrics.mteb_undersample(labels, samples_per_label=4, n_experiments=3)
    task = mteb_classification.AbsTaskClassification.__new__(mteb_classification.AbsTaskClassification)
    task.seed, task.samples_per_label, task.label_column_name = 42, 4, "label"
    dataset = Dataset.from_dict({"label": labels})
    idxs = None
    for expected in ours:
        _, idxs, selected = task._undersample_data(dataset, 0, idxs)
        assert selected == expected


def test_classification_accuracy_on_separable_data():
    rng = np.random.default_rng(0)
    centers = np.eye(3) * 5
    train_labels = [i % 3 for i in range(60)]
    train = centers[train_labels] + rng.normal(size=(60, 3))
    test_labels = [i % 3 for i in range(30)]
    test = centers[test_labels] + rng.normal(size=(30, 3))
    scores = metrics.classification_scores(train, train_labels, test, test_labels, samples_per_label=8)
    assert scores["accuracy"] == pytest.approx(100.0)
    assert scores["f1"] == pytest.approx(100.0)


def test_clustering_v_measure():
    from sklearn.metrics import v_measure_score

    points = np.array([[0, 0], [0, 0.1], [10, 10], [10, 10.1], [-10, 5], [-10, 5.1]])
    labels = ["a", "a", "b", "b", "c", "c"]
    assert metrics.clustering_v_measure(points, labels)["v_measure"] == pytest.approx(100.0)
    assert v_measure_score(labels, [0, 0, 1, 1, 1, 1]) < 1  # sanity of the reference itself


def test_bitext_f1_by_hand():
    source = np.array([[1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])
    target = np.eye(3)
    # nearest targets: 0, 0, 2 (the second sentence is matched to the first's translation)
    scores = metrics.bitext_scores(source, target)
    # per gold index (support 1 each): 0 → P 1/2, R 1, F1 2/3; 1 → never predicted: 0; 2 → 1
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 0 + 1) / 3)
    assert scores["precision"] == pytest.approx(100 * (0.5 + 0 + 1) / 3)
    assert scores["recall"] == pytest.approx(100 * 2 / 3) and scores["accuracy"] == pytest.approx(100 * 2 / 3)
    assert metrics.bitext_scores(target, source)["f1"] == pytest.approx(100.0)  # the other way all three match


def test_bitext_task_scores_both_directions_and_averages_languages(tmp_path):
    from llembed.evaluation.datasets import Dataset
    from llembed.evaluation.tasks import make_task

    rows = [{"sentence1": f"s{i}", "sentence2": f"t{i}", "subset": "xx-eng"} for i in range(3)]
    rows += [{"sentence1": f"u{i}", "sentence2": f"v{i}", "subset": "yy-eng"} for i in range(2)]
    task = make_task(Dataset("bitext", "toy", tmp_path, rows=rows))
    vectors = {
        "s0": [1, 0, 0], "s1": [1, 0.1, 0], "s2": [0, 0, 1], "t0": [1, 0, 0], "t1": [0, 1, 0], "t2": [0, 0, 1],
        "u0": [0, 1, 0], "u1": [0, 0, 1], "v0": [0, 0, 1], "v1": [0, 1, 0],  # both crossed: F1 0
    }  # fmt: skip
    texts = task.requests()["text"]
    scores = task.score({"text": np.array([vectors[t] for t in texts], dtype=float)})
    assert scores["xx-eng"] == pytest.approx(100 * 5 / 9) and scores["yy-eng"] == 0.0
    assert scores["main"] == scores["f1"] == pytest.approx(100 * 5 / 18)
    assert scores["f1_reverse"] == pytest.approx((100.0 + 0.0) / 2)
