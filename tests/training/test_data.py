"""Training data: parsing with file:line errors, and the task-homogeneous, resumable batch order."""

import json

import pytest

from llembed.errors import InputError
from llembed.training.data import TaskBatches, TrainExample, load_examples, load_sentences, write_examples


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_examples_reads_all_fields(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        [
            {"query": "q", "positive": "p"},
            {
                "query": "q2",
                "positive": "p2",
                "negatives": ["n1", "n2"],
                "task": "t",
                "instruction": "Find",
                "scores": [3, 1, 0.5],
            },
        ],
    )
    first, second = load_examples(path)
    assert first == TrainExample("q", "p")
    assert second.negatives == ("n1", "n2") and second.task == "t" and second.instruction == "Find"
    assert second.scores == (3.0, 1.0, 0.5)
    assert TrainExample(**{**second.__dict__}).to_dict()["scores"] == [3.0, 1.0, 0.5]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"query": "", "positive": "p"}, "'query' must be a non-empty string"),
        ({"query": "q"}, "'positive' must be a non-empty string"),
        ({"query": "q", "positive": "p", "negatives": "n"}, "'negatives' must be a list"),
        ({"query": "q", "positive": "p", "scores": [1, 2]}, "'scores' has 2 values"),
        ({"query": "q", "positive": "p", "grade": 1}, "unknown field"),
        ({"query": "q", "positive": "p", "label": "high"}, "'label' must be a number"),
        ({"query": "q", "positive": "p", "label": 2.0, "negatives": ["n"]}, "graded pair"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_rows_are_named_by_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "d.jsonl", [{"query": "a", "positive": "b"}, row])
    with pytest.raises(InputError, match=message) as error:
        load_examples(path)
    assert "d.jsonl:2" in str(error.value)


def test_a_task_must_have_one_instruction(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        [
            {"query": "a", "positive": "b", "task": "t", "instruction": "X"},
            {"query": "c", "positive": "d", "task": "t", "instruction": "Y"},
        ],
    )
    with pytest.raises(InputError, match="two instructions"):
        load_examples(path)


def test_a_task_is_all_graded_pairs_or_none(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        [{"query": "a", "positive": "b", "task": "t", "label": 4.5}, {"query": "c", "positive": "d", "task": "t"}],
    )
    with pytest.raises(InputError, match="mixes graded pairs"):
        load_examples(path)
    ok = _write(tmp_path / "ok.jsonl", [{"query": "a", "positive": "b", "task": "sts", "label": 4}])
    assert load_examples(ok)[0].label == 4.0


def _examples(tasks):
    return [TrainExample(f"q{i}", f"p{i}", task=task) for i, task in enumerate(tasks)]


def test_batches_are_task_homogeneous_and_cover_each_epoch():
    examples = _examples(["a"] * 10 + ["b"] * 7)
    batches = TaskBatches(examples, batch_size=3, seed=1)
    assert batches.batches_per_epoch == 3 + 2
    epoch = batches.epoch(0)
    for rows in epoch:
        assert len(rows) == 3 and len({examples[i].task for i in rows}) == 1
    flat = [i for rows in epoch for i in rows]
    assert len(flat) == len(set(flat)) == 15
    assert batches.epoch(0) == epoch and batches.epoch(1) != epoch


def test_from_step_resumes_exactly_where_a_run_was():
    examples = _examples(["a"] * 9 + ["b"] * 6)
    batches = TaskBatches(examples, batch_size=3, seed=7)
    stream = batches.from_step(0)
    uninterrupted = [next(stream) for _ in range(12)]  # crosses two epoch boundaries (5 batches each)
    resumed = batches.from_step(7)
    assert [next(resumed) for _ in range(5)] == uninterrupted[7:]
    assert [step for step, _ in uninterrupted] == list(range(12))


def test_task_weights_scale_each_tasks_batches_and_stay_resumable():
    examples = _examples(["a"] * 12 + ["b"] * 12)  # 4 batches of 3 each
    batches = TaskBatches(examples, batch_size=3, seed=3, weights={"a": 2, "b": 0.5})
    assert batches.batches_per_epoch == 8 + 2
    assert batches.task_shares == {"a": 0.8, "b": 0.2}
    epoch = batches.epoch(0)
    a_rows = [i for rows in epoch if examples[rows[0]].task == "a" for i in rows]
    assert sorted(a_rows) == sorted(list(range(12)) * 2)  # every "a" example exactly twice
    b_rows = [i for rows in epoch if examples[rows[0]].task == "b" for i in rows]
    assert len(b_rows) == len(set(b_rows)) == 6 and all(i >= 12 for i in b_rows)
    assert batches.epoch(0) == epoch
    unweighted = TaskBatches(examples, batch_size=3, seed=3, weights={"a": 1.0})
    assert unweighted.epoch(0) == TaskBatches(examples, batch_size=3, seed=3).epoch(0)  # weight 1 changes nothing
    stream = batches.from_step(0)
    uninterrupted = [next(stream) for _ in range(25)]
    resumed = batches.from_step(13)
    assert [next(resumed) for _ in range(12)] == uninterrupted[13:]


@pytest.mark.parametrize(
    ("weights", "message"),
    [({"c": 1.0}, "names tasks the data does not have: c; its tasks: a, b"), ({"a": 0}, "positive numbers: a=0"),
     ({"b": -1.5}, "positive numbers: b=-1.5")],
)  # fmt: skip
def test_bad_task_weights_are_named(weights, message):
    with pytest.raises(InputError, match=message):
        TaskBatches(_examples(["a"] * 6 + ["b"] * 6), batch_size=3, weights=weights)


def test_batch_larger_than_every_task_is_an_error():
    with pytest.raises(InputError, match="larger than every task"):
        TaskBatches(_examples(["a"] * 3), batch_size=4)


def test_load_sentences_from_txt_and_jsonl(tmp_path):
    txt = tmp_path / "s.txt"
    txt.write_text("one\n\ntwo\none\n", encoding="utf-8")
    jsonl = _write(tmp_path / "s.jsonl", [{"text": "three"}, {"query": "four", "positive": "two"}])
    assert load_sentences([txt, jsonl]) == ["one", "two", "three", "four"]
    bad = _write(tmp_path / "bad.jsonl", [{"title": "x"}])
    with pytest.raises(InputError, match="bad.jsonl:1"):
        load_sentences(bad)


@pytest.mark.parametrize("name", ["mix.jsonl", "mix.jsonl.gz"])
def test_written_examples_load_back_and_rewrite_to_the_same_bytes(tmp_path, name):
    examples = [
        TrainExample(
            "What is a tuple?", "An immutable sequence.", ("A mutable list.",), "faq", "Answer it", scores=(0.9, 0.4)
        ),  # fmt: skip
        TrainExample("Ein Mann spielt Gitarre.", "Jemand spielt Musik.", label=3.8, task="sts"),
    ]
    path = write_examples(tmp_path / name, examples)
    assert load_examples(path) == examples
    first = path.read_bytes()
    assert first[:2] == b"\x1f\x8b" if name.endswith(".gz") else first.startswith(b'{"query": "What is a tuple?"')
    write_examples(path, examples)
    assert path.read_bytes() == first and [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left
