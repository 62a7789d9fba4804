"""Compare the general-purpose tuned model (``smollm2-135m-tuned``) with all-MiniLM-L6-v2, SGPT-125M's published
MTEB scores and the best training-free recipes, on the MTEB-style panel. One command:

    .venv/bin/python examples/compare_general.py [--config examples/general_lora.yaml] [--model smollm2-135m-tuned]

1. Decontamination first: the config's training files against every panel set (``llembed decontaminate``'s
   check). A leak stops the comparison: no score of a set the model was trained on is reported.
2. Every panel set in full, one evaluator for every measured row: STS-B, SICK-R, STS17 en-en (Spearman),
   SciFact and NFCorpus (nDCG@10, all queries and documents), Banking77, Emotion, AmazonCounterfactual
   (MTEB's logistic-regression protocol) and TwitterSemEval2015 (max AP).
3. Rows: the tuned model, all-MiniLM-L6-v2 (run here), the untrained default recipe on the sets the full-suite
   report has no training-free score for, SGPT-125M-weightedmean-nli-bitfit as published on MTEB, and the best
   training-free recipe per set from ``examples/results/full-suite/results.json``.

Each measured cell is written to ``<out>/cells.json`` when done, so a killed run resumes where it stopped.
Writes ``<out>/compare.md``, ``compare.json`` and ``decontamination.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llembed import Embedder, evaluation  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.evaluation.decontamination import TrainingTexts, check  # noqa: E402
from llembed.evaluation.evaluate import evaluate  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.training import TrainConfig  # noqa: E402
from llembed.training.data import load_examples  # noqa: E402

ROOT = Path(__file__).resolve().parent
# (column, bundled set, MTEB task and subset of the published scores, comparable with MTEB's number)
PANEL = [
    ("STS-B", "stsbenchmark", ("STSBenchmark", "default"), True),
    ("SICK-R", "sick", ("SICK-R", "default"), True),
    ("STS17 en-en", "sts17-en-en", ("STS17", "en-en"), True),
    ("SciFact", "scifact", ("SciFact", "default"), True),
    ("NFCorpus*", "nfcorpus-preprocessed", ("NFCorpus", "default"), False),  # preprocessed text: see README
    ("Banking77", "banking77", ("Banking77Classification", "default"), True),
    ("Emotion", "emotion", ("EmotionClassification", "default"), True),
    ("AmazonCF en", "amazon-counterfactual-en", ("AmazonCounterfactualClassification", "en"), True),
    ("TwitterSemEval2015*", "twitter-semeval2015", ("TwitterSemEval2015", "default"), False),  # PIT-2015 test
]
SGPT = "Muennighoff__SGPT-125M-weightedmean-nli-bitfit"
DOCUMENT_TOKENS = 256  # retrieval documents are cut here for every measured row (MiniLM's own limit)


def published(reference: Path, model: str) -> dict[str, float]:
    """A model's published MTEB scores (×100) by panel column, from the reference table."""
    wanted = {(task, subset): column for column, _, (task, subset), _ in PANEL}
    with reference.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {
        wanted[(row["task"], row["subset"])]: float(row["main_score_x100"])
        for row in rows
        if row["model"] == model and row["split"] == "test" and (row["task"], row["subset"]) in wanted
    }


def training_free_best(results: Path) -> dict[str, tuple[float, str]]:
    """The full-suite report's best training-free recipe per panel set that it measured in full."""
    if not results.is_file():
        return {}
    report = json.loads(results.read_text(encoding="utf-8"))
    # SICK-R (1,000 pairs) and SciFact (a subsample) ran on subsets there: not comparable, left out
    names = {
        "STSBenchmark": "STS-B",
        "STS17 en-en": "STS17 en-en",
        "TwitterSemEval2015 (PIT-2015 test)": "TwitterSemEval2015*",
    }
    return {names[task]: (best["main"], best["label"]) for task, best in report["best"].items() if task in names}


def decontaminate(config: TrainConfig, out: Path) -> None:
    training = TrainingTexts.of_examples(load_examples(config.data))
    report = check(training, [load_bundled(name) for _, name, _, _ in PANEL])
    atomic_write_text(out / "decontamination.json", json.dumps(report.to_dict(), indent=2))
    if report.leaks:
        sys.exit("the training data holds scored items of the panel:\n" + report.summary())
    print(f"decontamination: no panel set leaks into {', '.join(config.data)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "general_lora.yaml"), help="the tuned model's training config")
    parser.add_argument("--model", default="smollm2-135m-tuned", help="the tuned model (alias, run or recipe)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "general-lora")
    parser.add_argument("--reference", type=Path, default=Path(evaluation.__file__).parent / "reference_scores.tsv")
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    decontaminate(config, args.out)

    best_free = training_free_best(ROOT / "results" / "full-suite" / "results.json")
    tuned = f"{args.model} (trained on examples/data/general: SNLI, STS-B train, Banking77 train, stdlib code, "
    tuned += "MiniLM-distilled pairs)"
    systems = {  # row -> (embedder factory, columns to measure)
        tuned: (lambda: Embedder.from_pretrained(args.model), [c for c, *_ in PANEL]),
        "all-MiniLM-L6-v2 (run here, float32 as published)": (
            lambda: Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32"),
            [c for c, *_ in PANEL],
        ),
        "untrained SmolLM2-135M (prompteol · last; trained on nothing)": (
            lambda: Embedder.from_pretrained(None, prompt="prompteol", pooling="last"),
            [c for c, *_ in PANEL if c not in best_free],
        ),
    }
    cells_file = args.out / "cells.json"
    cells: dict[str, dict[str, float]] = json.loads(cells_file.read_text()) if cells_file.is_file() else {}
    datasets = {column: name for column, name, _, _ in PANEL}
    for row, (make, columns) in systems.items():
        todo = [c for c in columns if c not in cells.get(row, {})]
        if not todo:
            continue
        embedder = make()
        for column in todo:
            dataset = load_bundled(datasets[column])
            limits = {"truncation": True, "max_length": DOCUMENT_TOKENS} if dataset.type == "retrieval" else {}
            started = time.perf_counter()
            score = evaluate(embedder.replace(**limits) if limits else embedder, make_task(dataset))[0].main
            cells.setdefault(row, {})[column] = score
            atomic_write_text(cells_file, json.dumps(cells, indent=2))
            print(f"{row[:60]:<60} {column:<20} {score:6.2f}  ({time.perf_counter() - started:.0f} s)", flush=True)

    rows = dict(cells)
    sgpt = "SGPT-125M-weightedmean-nli-bitfit (published MTEB; trained on SNLI+MNLI)"
    rows[sgpt] = published(args.reference, SGPT)
    rows["best training-free recipe (full-suite report; trained on nothing)"] = {
        c: s for c, (s, _) in best_free.items()
    }
    columns = [c for c, *_ in PANEL]
    comparable = [c for c, _, _, same_text in PANEL if same_text]

    def mean(scores: dict[str, float], over: list[str]) -> str:
        return f"{sum(scores[c] for c in over) / len(over):.2f}" if all(c in scores for c in over) else "–"

    header = "| model | " + " | ".join(columns) + f" | mean | mean of the {len(comparable)} MTEB-comparable |"
    lines = [header, "|---|" + "---|" * (len(columns) + 2)]
    for row, scores in rows.items():
        values = [f"{scores[c]:.2f}" if c in scores else "–" for c in columns]
        lines.append(f"| {row} | " + " | ".join(values) + f" | {mean(scores, columns)} | {mean(scores, comparable)} |")
    notes = [
        "",
        "Scores ×100: Spearman (STS), nDCG@10 (retrieval, documents cut at 256 tokens), accuracy (classification, "
        "MTEB's protocol), max AP (pair classification). *NFCorpus is the original preprocessed release "
        "(lower-cased, stop-words removed) and TwitterSemEval2015 the PIT-2015 test file: not MTEB's text, so "
        "SGPT's published numbers there are not comparable. Training-free labels: "
        + "; ".join(f"{c}: {label}" for c, (_, label) in best_free.items()),
    ]
    table = "\n".join(lines + notes) + "\n"
    atomic_write_text(args.out / "compare.md", table)
    atomic_write_text(args.out / "compare.json", json.dumps({"scores": rows}, indent=2))
    print("\n" + table)


if __name__ == "__main__":
    main()
