"""Which reranking prompt and answer words suit a model, measured on held-aside pairs before training (issue 28).

    .venv/bin/python examples/rerank_prompt_sweep.py [--model smollm2-135m] [--queries 100]

Every prompt of ``llembed.rerank_prompts.RERANK_PROMPTS`` with its own answer words and with their other case
(``yes``/``no`` ↔ ``Yes``/``No``), zero-shot, on a seeded sample of ``examples/data/rerank/calibration.jsonl.gz``
(queries held aside from reranker training, each with its positive and 3 hard negatives): the share of queries
whose positive outranks all its negatives, and the mean reciprocal rank of the positive. The best start is what
``examples/rerank_lora.yaml`` then trains. Writes ``examples/results/rerank-prompts.md``.
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from llembed import Reranker  # noqa: E402
from llembed.backbone import cpu_name  # noqa: E402
from llembed.errors import LlembedError  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.rerank_prompts import RERANK_PROMPTS  # noqa: E402
from llembed.training.data import load_examples  # noqa: E402

ROOT = Path(__file__).resolve().parent


def other_case(labels: tuple[str, str]) -> list[str]:
    flip = str.lower if labels[0].strip()[:1].isupper() else str.capitalize
    return [label[: len(label) - len(label.lstrip())] + flip(label.lstrip()) for label in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    examples = load_examples(ROOT / "data" / "rerank" / "calibration.jsonl.gz")
    examples = random.Random(0).sample(examples, min(args.queries, len(examples)))
    base = Reranker.from_pretrained(args.model, truncation=True, max_length=512)
    lines = ["| prompt | answer words | positive first | MRR of the positive |", "|---|---|---|---|"]
    for name, prompt in RERANK_PROMPTS.items():
        label_sets = [None] if prompt.scoring == "likelihood" else [list(prompt.labels), other_case(prompt.labels)]
        for labels in label_sets:
            try:
                reranker = Reranker(base.backbone, base.recipe.replace(rerank_prompt=name, rerank_labels=labels))
            except LlembedError as exc:  # an answer word that is two tokens for this tokenizer
                lines.append(f"| {name} | {labels} | – | – ({exc}) |")
                continue
            ranks = []
            for example in tqdm(examples, desc=f"{name} {labels}"):
                scores = reranker.score(example.query, [example.positive, *example.negatives], task=example.instruction)
                ranks.append(1 + int((np.asarray(scores[1:]) > scores[0]).sum()))
            ranks = np.asarray(ranks)
            lines.append(f"| {name} | {labels} | {(ranks == 1).mean():.1%} | {(1 / ranks).mean():.3f} |")
            print(lines[-1], flush=True)
    lines += ["", f"{len(examples)} held-aside queries, each with its positive and 3 hard negatives; {args.model} "
              f"zero-shot; {cpu_name()}. Chance: 25 % positive first, MRR 0.521."]  # fmt: skip
    atomic_write_text(ROOT / "results" / "rerank-prompts.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
