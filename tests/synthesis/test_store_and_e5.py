"""The E5 recipe's bookkeeping with a scripted generator standing in for the LLM's replies: malformed output
is counted and skipped, and an interrupted run resumes without duplicates. (The real models are exercised in
test_generators.py.)"""

import json

import pytest

from llembed.synthesis.e5 import E5Options, synthesize_e5
from llembed.synthesis.pipeline import finish
from llembed.synthesis.store import SynthesisStore
from llembed.training.data import load_examples


class ScriptedGenerator:
    """Replies in order from a script; a brainstorm prompt gets the task list."""

    def __init__(self, replies, fail_after=None):
        self.replies = list(replies)
        self.served = 0
        self.fail_after = fail_after

    def chat(self, conversations, settings=None):
        out = []
        for conversation in conversations:
            prompt = conversation[-1]["content"]
            if prompt.startswith("Brainstorm"):
                out.append('["Retrieve sourdough recipes for a flour type.", "Retrieve oven repair guides."]')
                continue
            if self.fail_after is not None and self.served >= self.fail_after:
                raise KeyboardInterrupt  # the process is killed mid-run
            out.append(self.replies[self.served % len(self.replies)])
            self.served += 1
        return out


def good(i):
    return json.dumps(
        {
            "user_query": f"rye sourdough recipe number {i}",
            "positive_document": f"Recipe {i}: mix rye flour with an active starter, proof overnight, bake hot.",
            "hard_negative_document": f"Rye whisky {i} is distilled from a mash of at least half rye grain.",
        }
    )


COPIED = "the same words about rye bread baking at home today"
MALFORMED = [
    "Sorry, I can't help with that.",
    '{"user_query": "rye bread"',  # cut off
    json.dumps(
        {
            "user_query": COPIED,
            "positive_document": COPIED,
            "hard_negative_document": "Rye whisky is distilled from a mash of at least half rye grain.",
        }
    ),
]


def test_malformed_replies_are_counted_and_skipped(tmp_path):
    replies = [MALFORMED[0], good(0), MALFORMED[1], good(1), MALFORMED[2], good(0), good(2), good(3)]
    generator = ScriptedGenerator(replies)
    store = SynthesisStore(tmp_path / "out.jsonl")
    options = E5Options("baking", kinds=("retrieval",), tasks_per_kind=2, examples_per_task=2, batch=4)
    drops = synthesize_e5(generator, store, options)
    assert drops.kept == 4
    assert drops.reasons["no JSON object in the reply"] == 2
    assert drops.reasons["query copied into a document"] == 1
    assert drops.reasons["duplicate"] == 1
    result = finish(store, drops, None, 3)
    examples = load_examples(result.output)  # what `llembed train` reads
    assert len(examples) == 4 and {e.task for e in examples} == {"retrieval-0", "retrieval-1"}
    assert examples[0].instruction == "Retrieve sourdough recipes for a flour type."
    assert (tmp_path / "out.sample.md").is_file() and (tmp_path / "out.sample.html").is_file()


def test_bounded_attempts_drop_an_example_for_good(tmp_path):
    generator = ScriptedGenerator([MALFORMED[0]])
    store = SynthesisStore(tmp_path / "out.jsonl")
    drops = synthesize_e5(generator, store, E5Options("baking", ("retrieval",), 1, 2, max_attempts=3))
    assert drops.kept == 0 and generator.served == 6  # 2 examples × 3 attempts, then given up
    assert len(store.dropped.records) == 2


def test_an_interrupted_run_resumes_without_duplicates(tmp_path):
    options = E5Options("baking", kinds=("retrieval",), tasks_per_kind=2, examples_per_task=3, batch=2)
    replies = [good(i) for i in range(20)]
    store = SynthesisStore(tmp_path / "out.jsonl")
    with pytest.raises(KeyboardInterrupt):
        synthesize_e5(ScriptedGenerator(replies, fail_after=3), store, options)
    store.close()
    raw = tmp_path / "out.raw.jsonl"
    with raw.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "e5:retrieval:1:2", "query": "torn wri')  # killed mid-write
    store = SynthesisStore(tmp_path / "out.jsonl")
    assert len(store.kept.records) == 2  # the first batch; the torn line is cut
    resumed = ScriptedGenerator(replies[2:])
    drops = synthesize_e5(resumed, store, options)
    assert resumed.served == 4 and drops.kept == 6
    keys = [r["id"] for r in store.kept.records]
    assert len(keys) == len(set(keys)) == 6
