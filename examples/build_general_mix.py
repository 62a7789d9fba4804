"""Build the multi-task training mix of the general-purpose adapter (issue 17) from real, licence-clean data.

    .venv/bin/python examples/build_general_mix.py [--out examples/data/general]

Only data whose licence allows training a model that ships is used (SNLI CC BY-SA 4.0, STS Benchmark CC BY-SA
4.0, Banking77 CC BY 4.0, the Python standard library's own source and docs under the PSF licence); the
non-commercial sets (SICK, MRPC, Emotion, AmazonCounterfactual, SciFact, BIRCO) stay evaluation-only. Every
task file is checked against every bundled evaluation set and the examples holding a scored item are dropped
(``llembed.evaluation.decontamination``); the counts go into ``SOURCE.txt``.

Tasks (one file each, ``task`` set and ``instruction`` where the task is asymmetric; batches stay one task):

- ``nli``: SNLI premise → entailed hypothesis, the contradiction as hard negative.
- ``sts``: STS Benchmark train pairs with their 0–5 scores (CoSENT).
- ``banking77``: classification as retrieval: a query → another query of the same intent, one of another intent
  as negative (Banking77 train split only).
- ``code``: a Python standard-library function's docstring summary → the function without its docstring.
- ``distill``: unlabelled text pairs for the teacher alone, drawn from one pool of sentences (the sets above)
  and passages (the Python language reference, ``pydoc_data.topics``, and standard-library docstrings).
"""

from __future__ import annotations

import argparse
import ast
import random
import sysconfig
from collections import defaultdict
from pathlib import Path

from llembed.evaluation.bundled import load_bundled
from llembed.evaluation.decontamination import drop_leaks, load_held_out
from llembed.training.data import TrainExample, load_examples, write_examples

ROOT = Path(__file__).resolve().parent
# Asymmetric tasks instruct their queries (E5). Symmetric ones (STS, same-intent queries) take none: evaluation
# embeds both sides of a symmetric task alike, without an instruction, so training does too.
INSTRUCTIONS: dict[str, str | None] = {
    "nli": "Given a premise, retrieve a hypothesis that is entailed by the premise",
    "sts": None,
    "banking77": None,
    "code": "Given a description of what a Python function does, retrieve the function",
}
SKIPPED_STDLIB = ("test", "tests", "idlelib", "lib2to3", "ensurepip", "site-packages", "turtledemo", "__pycache__")


def nli() -> list[TrainExample]:
    rows = load_examples(ROOT / "data" / "snli" / "triplets.jsonl")
    return [TrainExample(e.query, e.positive, e.negatives, "nli", INSTRUCTIONS["nli"]) for e in rows]


def sts() -> list[TrainExample]:
    rows = load_examples(ROOT / "data" / "stsb" / "train_pairs.jsonl")
    return [TrainExample(e.query, e.positive, (), "sts", INSTRUCTIONS["sts"], label=e.label) for e in rows]


def banking77(rng: random.Random, count: int) -> list[TrainExample]:
    by_label: dict[str, list[str]] = defaultdict(list)
    for row in load_bundled("banking77").train:
        by_label[row["label"]].append(row["text"])
    labels = sorted(by_label)
    examples = []
    for _ in range(count):
        label = rng.choice(labels)
        query, positive = rng.sample(by_label[label], 2)
        other = rng.choice([name for name in labels if name != label])
        examples.append(TrainExample(query, positive, (rng.choice(by_label[other]),), "banking77",
                                     INSTRUCTIONS["banking77"]))  # fmt: skip
    return examples


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not set(p.relative_to(root).parts[:-1]) & set(SKIPPED_STDLIB))


def stdlib_functions(min_words: int = 5, max_lines: int = 40) -> list[tuple[str, str, str]]:
    """(docstring summary, function without its docstring, whole docstring) of documented stdlib functions."""
    found: dict[str, tuple[str, str, str]] = {}
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
                continue
            docstring = ast.get_docstring(node)
            if not docstring:
                continue
            summary = " ".join(docstring.strip().split("\n\n")[0].split())
            if len(summary.split()) < min_words:
                continue
            node.body = node.body[1:] or [ast.Pass()]  # the docstring out: the query must not be in the code
            code = ast.unparse(node)
            if not 3 <= code.count("\n") + 1 <= max_lines:
                continue
            found.setdefault(summary, (summary, code, " ".join(docstring.split())))
    return list(found.values())


def code(rng: random.Random, functions: list[tuple[str, str, str]], count: int) -> list[TrainExample]:
    chosen = rng.sample(functions, min(count, len(functions)))
    return [TrainExample(summary, body, (), "code", INSTRUCTIONS["code"]) for summary, body, _ in chosen]


def passages(functions: list[tuple[str, str, str]], min_words: int = 40, max_words: int = 220) -> list[str]:
    """Documentation paragraphs: the language reference's topics (split into paragraphs) and long docstrings."""
    import pydoc_data.topics

    texts = []
    for topic in pydoc_data.topics.topics.values():
        for paragraph in topic.split("\n\n"):
            words = paragraph.split()
            if min_words <= len(words) <= max_words:
                texts.append(" ".join(words))
    texts += [doc for _, _, doc in functions if min_words <= len(doc.split()) <= max_words]
    return list(dict.fromkeys(texts))


def distill(rng: random.Random, sentences: list[str], documents: list[str], count: int) -> list[TrainExample]:
    """Random pairs from one pool of sentences and passages (half each): a batch's query × candidate matrix then
    holds sentence-sentence, passage-passage and sentence-passage similarities for the teacher to grade."""
    pool = rng.sample(sentences, min(len(sentences), len(documents))) + documents
    return [TrainExample(*rng.sample(pool, 2), (), "distill") for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "general")
    parser.add_argument("--banking", type=int, default=3000)
    parser.add_argument("--code", type=int, default=3000)
    parser.add_argument("--distill", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    functions = stdlib_functions()
    tasks = {
        "nli": nli(),
        "sts": sts(),
        "banking77": banking77(rng, args.banking),
        "code": code(rng, functions, args.code),
    }
    sentences = sorted({t for name in ("nli", "sts", "banking77") for e in tasks[name] for t in (e.query, e.positive)})
    tasks["distill"] = distill(rng, sentences, passages(functions), args.distill)
    held_out = load_held_out(["bundled"])
    lines = []
    for name, examples in tasks.items():
        kept, dropped = drop_leaks(examples, held_out)
        write_examples(args.out / f"{name}.jsonl.gz", kept)
        lines.append(f"- {name}.jsonl.gz: {len(kept)} examples ({len(dropped)} dropped: they hold a scored item of "
                     "a bundled evaluation set)")  # fmt: skip
        print(lines[-1])
    source = (ROOT / "data" / "general" / "SOURCE.txt").read_text(encoding="utf-8").split("\n## Counts")[0]
    (args.out / "SOURCE.txt").write_text(source + "\n## Counts\n" + "\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
