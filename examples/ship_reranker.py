"""Calibrate a trained reranker on held-aside pairs and ship it inside llembed as an alias (issue 28).

    .venv/bin/python examples/ship_reranker.py [--run runs/smollm2-reranker] [--alias smollm2-135m-reranker]

1. Scores held-aside (query, positive) and (query, negative) pairs of ``examples/data/rerank/calibration.jsonl.gz``
   (built by ``examples/build_rerank_mix.py``; never trained on) with the run's reranker in the dtype serving picks.
2. Fits Platt scaling on them (``llembed.rerank_calibration.fit_platt``) and reports, before (the sigmoid of
   the raw score) and after: log-loss, expected calibration error over 10 bins, and the share of queries whose
   positive outranks all its negatives (calibration cannot change that one).
3. Writes ``src/llembed/models/<alias>/`` (the recipe with ``rerank_calibration``, the adapter in bf16, a model
   card with these numbers) and ``calibration.json`` into the run folder.

An untrained alias (``--run src/llembed/models/smollm2-135m-ql-reranker``: a folder with a recipe and no training
record) is calibrated in place: its recipe gets ``rerank_calibration`` and its card these numbers; the report goes to
``examples/results/<alias>/calibration.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
from ship_general_adapter import GEMMA_NOTICE, ship, train_log  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from llembed import Recipe, Reranker  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.rerank_calibration import calibrated, fit_platt  # noqa: E402
from llembed.training import TrainConfig  # noqa: E402
from llembed.training.data import load_examples  # noqa: E402

ROOT = Path(__file__).resolve().parent
CARD = """# {alias}

{base} as a reranker: it reads the `{prompt}` prompt (instruction, query and
document) and the score is `logit(yes) − logit(no)` of its answer; `relevance_score` is
`sigmoid({scale:.4f} · score {bias:+.4f})`. LoRA adapter r {rank} on {blocks}, weights in bfloat16.

**Training.** `{config_file}`: {steps} steps of {batch} queries, each with its positive and 3 hard
negatives (listwise softmax loss{distillation}), {minutes:.0f} min on a 2-core CPU.
Data: `examples/data/rerank/` (built by `examples/build_rerank_mix.py` from the licence-clean
`examples/data/retrieval/`): Python FAQ question → answer and documentation topic → passage pairs (PSF licence),
WordNet "what is X?" → gloss pairs (WordNet licence), Gecko-style questions written by SmolLM2-135M-Instruct
over the documentation passages; hard negatives mined with BM25; every file checked against every bundled
evaluation set. No bigger reranker could be had offline to distil from.

**Calibration.** Platt scaling fitted on {pairs} held-aside pairs ({queries} queries, about 10 % of each task's
queries chosen by a hash of the query text, never trained on). Measured out of sample (fitted on half of the
queries, scored on the other half; the shipped fit uses all of them):

| | log-loss | expected calibration error (10 bins) |
|---|---|---|
| sigmoid of the raw score | {loss_before:.3f} | {ece_before:.3f} |
| calibrated | {loss_after:.3f} | {ece_after:.3f} |

On those queries the positive outranks all its negatives {top1:.1%} of the time (a random order: 27 %; the
untrained SmolLM2-135M-Instruct's zero-shot answer: 29 % on 100 of them, `examples/results/rerank-prompts.md`).
Retrieve-then-rerank scores: `examples/results/rerank-panel/compare.md`.
{terms}"""

ZERO_SHOT_CARD = """# {alias}

{base} as it ships, untrained, as a query-likelihood reranker
(UPR: Sachan et al., 2022): the prompt is `Passage: <document>` / `Please write a query based on this
passage.` / `Query: <query>`, and the score is the mean log-probability of the query's tokens after the document
less the same after no document (how much the document raises the model's belief in the query, per token).
`relevance_score` is `sigmoid({scale:.4f} · score {bias:+.4f})`. No adapter: the bundled weights are the reranker.

**Calibration.** Platt scaling fitted on {pairs} held-aside pairs ({queries} queries of `examples/data/rerank/`:
Python FAQ and documentation, WordNet and Gecko-style questions, about 10 % of each task's queries chosen by a
hash of the query text). Measured out of sample (fitted on half of the queries, scored on the other half; the
shipped fit uses all of them):

| | log-loss | expected calibration error (10 bins) |
|---|---|---|
| sigmoid of the raw score | {loss_before:.3f} | {ece_before:.3f} |
| calibrated | {loss_after:.3f} | {ece_after:.3f} |

On those queries the positive outranks all its negatives {top1:.1%} of the time (a random order: 27 %).
Retrieve-then-rerank scores: `docs/benchmarks/reranking.md`.
"""


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[which == b].mean() - y[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))  # fmt: skip


BASES = {  # the run's base model → how the card names it, its hub id, and whether the Gemma terms apply
    "smollm2-135m": ("SmolLM2-135M-Instruct (bundled as `smollm2-135m`)", "HuggingFaceTB/SmolLM2-135M-Instruct", False),
    "gemma-3-270m": ("Gemma-3-270M base (bundled as `gemma-3-270m`; Gemma Terms of Use)", "google/gemma-3-270m", True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/smollm2-reranker"))
    parser.add_argument("--alias", default="smollm2-135m-reranker")
    parser.add_argument("--queries", type=int, default=400, help="held-aside queries scored (seeded sample)")
    parser.add_argument("--config-file", default="examples/rerank_lora.yaml", help="the config the run used")
    parser.add_argument("--measure-only", action="store_true", help="report the held-aside numbers, ship nothing")
    args = parser.parse_args()
    examples = load_examples(ROOT / "data" / "rerank" / "calibration.jsonl.gz")
    examples = random.Random(0).sample(examples, min(args.queries, len(examples)))
    # the dtype serving picks (bf16 on a CPU with native bf16): the scores calibrated are the scores served
    reranker = Reranker.from_pretrained(str(args.run), truncation=True, max_length=512)
    scores, labels, top1 = [], [], 0
    for example in tqdm(examples, desc="scoring held-aside pairs"):
        found = reranker.score(example.query, [example.positive, *example.negatives], task=example.instruction)
        scores += found
        labels += [True] + [False] * len(example.negatives)
        top1 += found[0] > max(found[1:])
    scale, bias = fit_platt(scores, labels)
    # the reported gain is out of sample: fit on the first half of the queries' pairs, judge on the second
    half = sum(1 + len(e.negatives) for e in examples[: len(examples) // 2])
    y = np.asarray(labels[half:], dtype=float)
    before = np.asarray(calibrated(scores[half:], None))
    after = np.asarray(calibrated(scores[half:], fit_platt(scores[:half], labels[:half])))
    report = {
        "rerank_calibration": [scale, bias],
        "queries": len(examples),
        "pairs": len(scores),
        "log_loss": {"before": log_loss(before, y), "after": log_loss(after, y)},
        "ece": {"before": expected_calibration_error(before, y), "after": expected_calibration_error(after, y)},
        "positive_first": top1 / len(examples),
    }
    untrained = not (args.run / "train_config.yaml").is_file()
    report_folder = ROOT / "results" / args.run.name if untrained else args.run
    report_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report_folder / "calibration.json", json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.measure_only:
        return
    if untrained:
        base = BASES[reranker.recipe.model or "smollm2-135m"][0]
        card = ZERO_SHOT_CARD.format(alias=args.run.name, base=base, scale=scale, bias=bias, pairs=len(scores),
                                     queries=len(examples), loss_before=report["log_loss"]["before"],
                                     loss_after=report["log_loss"]["after"], ece_before=report["ece"]["before"],
                                     ece_after=report["ece"]["after"], top1=report["positive_first"])  # fmt: skip
        Recipe.load(args.run / "recipe.yaml").replace(rerank_calibration=[scale, bias]).save(args.run / "recipe.yaml")
        atomic_write_text(args.run / "README.md", card)
        print(f"calibrated {args.run} in place")
        return
    log = train_log(args.run)
    config = TrainConfig.load(args.run / "train_config.yaml")
    base, hub_id, gemma = BASES[config.recipe.get("model") or "smollm2-135m"]
    layers = config.lora.layers
    blocks = f"blocks {layers[0]}–{layers[-1]}" if layers else "every block"
    card = CARD.format(alias=args.alias, base=base, rank=config.lora.r, blocks=blocks, config_file=args.config_file,
                       prompt=reranker.prompt.name, scale=scale, bias=bias, steps=log[-1]["step"],
                       minutes=log[-1]["seconds"] / 60, batch=config.batch_size, pairs=len(scores),
                       distillation=f", plus {config.score_distillation} × KL to all-MiniLM-L6-v2's scores"
                       if config.score_distillation else "; no score distillation: see the config",
                       queries=len(examples),
                       loss_before=report["log_loss"]["before"], loss_after=report["log_loss"]["after"],
                       ece_before=report["ece"]["before"], ece_after=report["ece"]["after"],
                       top1=report["positive_first"], terms=f"\n{GEMMA_NOTICE}" if gemma else "")  # fmt: skip
    target = ship(args.run, args.alias, hub_id, card, gemma=gemma,
                  recipe={"rerank_calibration": [scale, bias], "truncation": True})  # fmt: skip
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
