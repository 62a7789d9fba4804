"""Decontamination: counts by hand on tiny sets, the real overlaps of the shipped training data, and a planted
leak that stops a training run (or is dropped from it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llembed.errors import InputError
from llembed.evaluation.datasets import load_dataset
from llembed.evaluation.decontamination import (
    TrainingTexts,
    check,
    drop_leaks,
    held_out_parts,
    load_held_out,
    normalize,
)
from llembed.training.data import TrainExample, load_examples

ROOT = Path(__file__).resolve().parents[2]
STSB_TRAIN = ROOT / "examples" / "data" / "stsb" / "train_pairs.jsonl"


def _sts_set(tmp_path: Path) -> Path:
    rows = [("A man plays a guitar.", "A person plays music.", 4.0), ("A dog runs.", "A cat sleeps.", 0.5),
            ("Two kids swim.", "Children are swimming.", 4.6)]  # fmt: skip
    folder = tmp_path / "tiny-sts"
    folder.mkdir()
    (folder / "test.tsv").write_text(
        "sentence1\tsentence2\tscore\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows), encoding="utf-8"
    )
    (folder / "dataset.json").write_text(json.dumps({"type": "sts", "name": "tiny STS"}), encoding="utf-8")
    return folder


def test_normalize_removes_case_unicode_forms_and_whitespace_runs():
    assert normalize("  A  Man\u00a0IS\tplaying\n") == "a man is playing"
    assert normalize("ﬁne Ｔext") == "fine text"  # NFKC: the ligature and the full-width letter


def test_sts_counts_pairs_in_either_order_and_sentences_by_hand(tmp_path):
    dataset = load_dataset(_sts_set(tmp_path))
    training = TrainingTexts.of_examples([
        TrainExample("A person plays music.", "A man plays a guitar."),  # test pair 1, reversed: exact
        TrainExample("two kids  swim.", "children are swimming."),  # test pair 3 after normalising
        TrainExample("A dog runs.", "A horse jumps."),  # one sentence of pair 2, paired differently
    ])  # fmt: skip
    report = check(training, [dataset])
    by_part = {overlap.part: overlap for overlap in report.overlaps}
    assert (by_part["pairs"].total, by_part["pairs"].exact, by_part["pairs"].normalized) == (3, 1, 2)
    assert (by_part["sentences"].total, by_part["sentences"].exact, by_part["sentences"].normalized) == (6, 3, 5)
    assert [leak.part for leak in report.leaks] == ["pairs"]  # shared sentences alone are not a leak
    assert by_part["pairs"].examples == ("A man plays a guitar. ||| A person plays music.",
                                         "Two kids swim. ||| Children are swimming.")  # fmt: skip
    kept, dropped = drop_leaks(
        [TrainExample("A dog runs.", "A horse jumps."), TrainExample("Two kids swim.", "Children are swimming.")],
        [dataset],
    )
    assert [e.positive for e in kept] == ["A horse jumps."] and len(dropped) == 1


def test_retrieval_queries_and_documents_are_scored_parts():
    scifact = load_held_out(["scifact"])[0]
    parts = held_out_parts(scifact)
    assert (len(parts["queries"]), len(parts["documents"])) == (300, 5183)
    query, document = parts["queries"][7], parts["documents"][11]
    training = TrainingTexts.of_examples([TrainExample(query.upper(), "an unrelated passage"),
                                          TrainExample("a synthetic query", document)])  # fmt: skip
    report = check(training, [scifact])
    counts = {overlap.part: (overlap.exact, overlap.normalized) for overlap in report.overlaps}
    assert counts == {"queries": (0, 1), "documents": (1, 1)}
    assert len(report.leaks) == 2


def test_classification_train_split_is_not_held_out():
    banking = load_held_out(["banking77"])[0]
    training = TrainingTexts.of_sentences([row["text"] for row in banking.train[:50]])
    test_texts = {normalize(row["text"]) for row in banking.rows}
    expected = sum(normalize(row["text"]) in test_texts for row in banking.train[:50])
    (overlap,) = check(training, [banking]).overlaps
    assert overlap.part == "texts" and overlap.normalized == expected


def test_the_shipped_stsb_train_pairs_hold_mrpc_and_stsb_test_pairs():
    """A real finding: STS-B train includes STS 2012's MSRpar, i.e. MRPC pairs; and 12 STS-B test pairs."""
    report = check(TrainingTexts.of_examples(load_examples(STSB_TRAIN)), load_held_out(["mrpc", "stsbenchmark"]))
    found = {(o.dataset, o.part): (o.total, o.exact, o.normalized) for o in report.overlaps}
    assert found[("MRPC", "pairs")] == (1725, 498, 498)
    assert found[("STSBenchmark", "pairs")] == (1379, 12, 12)
    assert found[("STSBenchmark", "sentences")] == (2758, 311, 311)
    assert {(leak.dataset, leak.part) for leak in report.leaks} == {("MRPC", "pairs"), ("STSBenchmark", "pairs")}


def test_unknown_held_out_set_is_named():
    with pytest.raises(InputError, match="'no-such-set' is neither a bundled set nor a path"):
        load_held_out(["no-such-set"])


def test_cli_reports_a_planted_leak_and_exits_1(tmp_path):
    from llembed.cli import app

    scifact = load_held_out(["scifact"])[0]
    planted = [{"query": q, "positive": "some passage"} for q in list(scifact.queries.values())[:5]]
    clean = [{"query": "a question nobody asked", "positive": "a passage nobody wrote"}]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in planted + clean), encoding="utf-8")
    result = CliRunner().invoke(app, ["decontaminate", str(data), "--held-out", "scifact", "--json",
                                      str(tmp_path / "report.json")])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "SciFact queries: 5 of 300 in the training data (5 exactly)" in result.output
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["leaks"] == 1
    data.write_text(json.dumps(clean[0]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["decontaminate", str(data), "--held-out", "scifact"])
    assert result.exit_code == 0 and "no scored evaluation item" in result.output
