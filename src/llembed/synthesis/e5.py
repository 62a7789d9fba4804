"""The E5-Mistral recipe (Wang et al., 2024, arXiv:2401.00368): an LLM brainstorms tasks, then writes one
example per call for each task, with length, clarity, difficulty and language drawn at random per example.

Three task kinds map onto training examples ``{query, positive, negatives}``:

| kind | query | positive | negative |
|---|---|---|---|
| retrieval | user_query | positive_document | hard_negative_document |
| sts | S1 | S2 (a paraphrase) | S3 (overlapping words, other meaning) |
| classification | input_text | label | misleading_label |
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from llembed.generation import GenerationSettings
from llembed.synthesis.parsing import Drops, extract_fields, normalized, parse_list, validate
from llembed.synthesis.store import SynthesisStore

KINDS = ("retrieval", "sts", "classification")

BRAINSTORM = {
    "retrieval": (
        "Brainstorm a list of useful text retrieval tasks in the domain of {domain}. For each task say what the "
        'search query is and what documents should be found, in one sentence, for example: "Retrieve recipes '
        'that use a given ingredient." Answer with a numbered list of {count} tasks, one per line.'
    ),
    "sts": (
        "Brainstorm a list of semantic text similarity tasks in the domain of {domain}: kinds of sentences whose "
        'paraphrases should be recognised, in one sentence each, for example: "Retrieve sentences that state '
        'the same symptom." Answer with a numbered list of {count} tasks, one per line.'
    ),
    "classification": (
        "Brainstorm a list of text classification tasks in the domain of {domain}, in one sentence each naming "
        'the labels, for example: "Classify a customer review as positive or negative." '
        "Answer with a numbered list of {count} tasks, one per line."
    ),
}

EXAMPLE = {
    "retrieval": (
        "You have a retrieval task: {task}\n"
        "Write one example for it as a JSON object with exactly these keys:\n"
        '- "user_query": a search query for this task, {query_length}, {clarity}.\n'
        '- "positive_document": a document of about {words} words that answers the query.\n'
        '- "hard_negative_document": a document of about {words} words that seems related to the query but '
        "does not answer it.\n"
        "Write in {language}, for readers with {difficulty} education. Do not copy the query into the documents. "
        "Answer with the JSON object only."
    ),
    "sts": (
        "You have a text similarity task: {task}\n"
        "Write one example as a JSON object with exactly these keys:\n"
        '- "S1": a sentence of {query_length} for this task.\n'
        '- "S2": a paraphrase of S1 that uses different words.\n'
        '- "S3": a sentence that shares many words with S1 but means something different.\n'
        "Write in {language}. Answer with the JSON object only."
    ),
    "classification": (
        "You have a classification task: {task}\n"
        "Write one example as a JSON object with exactly these keys:\n"
        '- "input_text": a text of about {words} words to classify, {clarity}.\n'
        '- "label": the correct label for the text.\n'
        '- "misleading_label": a wrong label from the same task that a careless reader might choose.\n'
        "Write in {language}. Answer with the JSON object only."
    ),
}

KEYS = {
    "retrieval": ("user_query", "positive_document", "hard_negative_document"),
    "sts": ("S1", "S2", "S3"),
    "classification": ("input_text", "label", "misleading_label"),
}
MAX_NEW_TOKENS = {"retrieval": 320, "sts": 160, "classification": 200}
MIN_WORDS = {"retrieval": (2, 8, 8), "sts": (4, 4, 4), "classification": (4, 1, 1)}

QUERY_LENGTHS = ("fewer than 5 words", "5 to 15 words", "at least 10 words")
CLARITY = ("clear", "understandable with some effort", "a little ambiguous")
DIFFICULTY = ("high school", "college", "PhD")
WORDS = (30, 60, 100)


@dataclass
class E5Options:
    domain: str
    kinds: tuple[str, ...] = KINDS
    tasks_per_kind: int = 5
    examples_per_task: int = 10
    language: str = "English"
    max_attempts: int = 3
    """Tries per example (and per brainstorm) before it is dropped."""
    batch: int = 16


def brainstorm(generator, kind: str, options: E5Options, drops: Drops) -> list[str]:
    """Up to ``tasks_per_kind`` distinct task descriptions for ``kind``."""
    prompt = BRAINSTORM[kind].format(domain=options.domain, count=options.tasks_per_kind * 2)
    settings = GenerationSettings(max_new_tokens=384, temperature=0.9)
    tasks: dict[str, str] = {}
    for _ in range(options.max_attempts):
        reply = generator.chat([[{"role": "user", "content": prompt}]], settings)[0]
        example = normalized(re.search(r'example: "([^"]*)"', prompt).group(1))
        found = [t for t in parse_list(reply) if 4 <= len(t.split()) <= 40 and normalized(t) != example]
        if not found:
            drops.drop(f"brainstorm ({kind}): no task list in the reply")
        for task in found:
            tasks.setdefault(normalized(task), task)
        if len(tasks) >= options.tasks_per_kind:
            break
    return list(tasks.values())[: options.tasks_per_kind]


def _prompt(kind: str, task: str, key: str, language: str) -> str:
    rng = random.Random(key)  # the same attributes when a resumed run retries this key
    return EXAMPLE[kind].format(
        task=task,
        query_length=rng.choice(QUERY_LENGTHS),
        clarity=rng.choice(CLARITY),
        difficulty=rng.choice(DIFFICULTY),
        words=rng.choice(WORDS),
        language=language,
    )


def _jobs(tasks: dict[str, list[str]], options: E5Options, done: set[str]) -> Iterator[tuple[str, str, int, str]]:
    for kind, descriptions in tasks.items():
        for index, task in enumerate(descriptions):
            for number in range(options.examples_per_task):
                key = f"e5:{kind}:{index}:{number}"
                if key not in done:
                    yield key, kind, index, task


def synthesize_e5(generator, store: SynthesisStore, options: E5Options, progress=None) -> Drops:
    state = store.load_state()
    drops = Drops.from_dict(state.get("drops", {}))
    tasks: dict[str, list[str]] = state.get("tasks") or {}
    for kind in options.kinds:
        if kind not in tasks:
            tasks[kind] = brainstorm(generator, kind, options, drops)
            store.save_state({"recipe": "e5", "tasks": tasks, "drops": drops.to_dict()})
    seen = {(normalized(r["query"]), normalized(r["positive"])) for r in store.kept.records}
    pending = list(_jobs(tasks, options, store.done))
    attempts = dict.fromkeys((key for key, *_ in pending), 0)
    while pending:
        batch, pending = pending[: options.batch], pending[options.batch :]
        settings = GenerationSettings(max(MAX_NEW_TOKENS[kind] for _, kind, _, _ in batch), temperature=0.8)
        replies = generator.chat(
            [[{"role": "user", "content": _prompt(kind, task, key, options.language)}] for key, kind, _, task in batch],
            settings,
        )
        for (key, kind, index, task), reply in zip(batch, replies, strict=True):
            attempts[key] += 1
            example, reason = validate(extract_fields(reply, KEYS[kind]), KEYS[kind], MIN_WORDS[kind])
            if example is not None and (normalized(example["query"]), normalized(example["positive"])) in seen:
                example, reason = None, "duplicate"
            if example is None:
                drops.drop(reason)
                if attempts[key] < options.max_attempts:
                    pending.append((key, kind, index, task))
                else:
                    store.drop(key, reason, reply)
                continue
            seen.add((normalized(example["query"]), normalized(example["positive"])))
            store.keep(key, {**example, "task": f"{kind}-{index}", "instruction": task})
            drops.kept += 1
            if progress:
                progress(1)
        store.save_state({"recipe": "e5", "tasks": tasks, "drops": drops.to_dict()})
    return drops
