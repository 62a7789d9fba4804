"""An llembed Embedder as an mteb model: mteb's own score on injected local data equals ours to 0.1 points."""

import pytest

from llembed import Embedder
from llembed.evaluation.bundled import load_bundled, subsample_pairs, subsample_retrieval
from llembed.evaluation.evaluate import evaluate
from llembed.evaluation.tasks import make_task
from llembed.integrations.mteb import MTEBEncoder

mteb = pytest.importorskip("mteb")


@pytest.fixture(scope="module")
def minilm():
    return Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True)


def _run(model, task) -> float:
    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return 100 * result.task_results[0].get_score()


def test_sts_score_agrees_with_mteb(minilm):
    from datasets import Dataset, DatasetDict

    data = subsample_pairs(load_bundled("stsbenchmark"), 150)
    task = mteb.get_task("STSBenchmark")
    columns = {key: [row[key] for row in data.rows] for key in ("sentence1", "sentence2", "score")}
    task.dataset = DatasetDict({"test": Dataset.from_dict(columns)})
    task.data_loaded = True
    ours = evaluate(minilm, make_task(data))[0].main
    assert _run(MTEBEncoder(minilm), task) == pytest.approx(ours, abs=0.1)


def test_retrieval_score_agrees_with_mteb(minilm):
    from datasets import Dataset

    data = subsample_retrieval(load_bundled("scifact"), 20, 60)
    task = mteb.get_task("SciFact")
    corpus = Dataset.from_dict(
        {"id": list(data.corpus), "title": [""] * len(data.corpus), "text": list(data.corpus.values())}
    )
    queries = Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())})
    task.dataset = {
        "default": {"test": {"corpus": corpus, "queries": queries, "relevant_docs": data.qrels, "top_ranked": None}}
    }
    task.data_loaded = True
    ours = evaluate(minilm, make_task(data))[0].main
    assert _run(MTEBEncoder(minilm), task) == pytest.approx(ours, abs=0.1)
