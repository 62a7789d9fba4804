"""Hard-negative mining: the best-ranked candidates that are neither positives nor near-duplicates."""

import json

import numpy as np
import pytest

from llembed import Embedder
from llembed.errors import InputError
from llembed.training.data import TrainExample, load_examples
from llembed.training.mining import mine_hard_negatives, normalized

CORPUS = [
    "The red apple is a sweet fruit.",
    "the  red apple is a SWEET fruit.",  # the positive again, differently spelt
    "Red apple pie with fruit filling and sweet cream.",
    "An apple a day keeps the doctor away.",
    "Bananas are yellow.",
    "Stock markets fell on Monday.",
]


def test_bm25_mining_skips_positives_and_near_duplicates():
    examples = [TrainExample("sweet red apple fruit", "The red apple is a sweet fruit.")]
    mined, report = mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=2, max_positive_ratio=0.95)
    negatives = mined[0].negatives
    assert len(negatives) == 2
    assert all(normalized(n) != normalized(examples[0].positive) for n in negatives)
    assert negatives[0] == "Red apple pie with fruit filling and sweet cream."
    assert "Stock markets fell on Monday." not in negatives  # shares no term: ranks last
    assert report.skipped["positive or query"] >= 1 and report.negatives_written == 2


def test_ratio_filter_drops_candidates_scoring_like_the_positive():
    examples = [TrainExample("sweet red apple fruit", "The red apple is a sweet fruit.")]
    strict, report = mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=5, max_positive_ratio=0.3)
    loose, _ = mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=5, max_positive_ratio=None)
    assert len(strict[0].negatives) < len(loose[0].negatives)
    assert report.skipped["near-duplicate (score ≥ ratio × positive)"] >= 1
    assert report.short == 1


def test_embedder_mining_takes_the_top_ranked_allowed_candidates(tiny_model_dirs):
    embedder = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), prompt="prompteol", pooling="last")
    examples = [TrainExample(f"question {i} about fruit", CORPUS[i]) for i in (0, 3, 4)]
    mined, _ = mine_hard_negatives(examples, embedder, CORPUS, num_negatives=2, max_positive_ratio=None, skip_top=1)
    pool = list(dict.fromkeys(CORPUS[i] for i in (0, 2, 3, 4, 5)))  # CORPUS[1] collapses onto CORPUS[0]
    docs = embedder.encode_documents(pool)
    for example, result in zip(examples, mined, strict=True):
        scores = docs @ embedder.encode_queries(example.query)
        ranked = [pool[i] for i in np.argsort(-scores, kind="stable")]
        allowed = [t for rank, t in enumerate(ranked) if t != example.positive and rank >= 1]
        assert list(result.negatives) == allowed[:2]


def test_existing_negatives_are_kept_unless_replaced(tmp_path):
    examples = [TrainExample("sweet red apple fruit", CORPUS[0], negatives=("Bananas are yellow.",))]
    added, _ = mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=1)
    assert added[0].negatives[0] == "Bananas are yellow." and len(added[0].negatives) == 2
    replaced, _ = mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=1, replace_existing=True)
    assert len(replaced[0].negatives) == 1
    with pytest.raises(InputError, match="num_negatives"):
        mine_hard_negatives(examples, "bm25", CORPUS, num_negatives=0)


def test_mine_negatives_command_writes_trainable_jsonl(tmp_path):
    from typer.testing import CliRunner

    from llembed.cli import app

    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"query": q, "positive": p}) + "\n"
            for q, p in [
                ("sweet red apple fruit", CORPUS[0]),
                ("doctor apple", CORPUS[3]),
                ("yellow bananas", CORPUS[4]),
            ]
        ),
        encoding="utf-8",
    )
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    out = tmp_path / "mined.jsonl"
    result = CliRunner().invoke(
        app, ["mine-negatives", str(data), str(out), "--corpus", str(corpus), "--bm25", "--num-negatives", "2"]
    )
    assert result.exit_code == 0, result.output
    mined = load_examples(out)
    assert [len(e.negatives) for e in mined] == [2, 2, 2]
    assert "negatives written" in result.output
