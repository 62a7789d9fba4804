"""Issue 27's comparison: the shipped tuned models against all-MiniLM-L6-v2, BM25 and SGPT-125M (published), on
the STS / retrieval / classification panel, with BM25 fused into each dense retriever. One command:

    .venv/bin/python examples/compare_retrieval.py [--models smollm2-135m-tuned gemma-3-270m-tuned]

- One evaluator for every measured cell (``llembed.evaluation``), every set in full, retrieval documents cut at
  256 tokens (MiniLM's own limit), BM25 as ``llembed.bm25`` (Lucene BM25, stemmed), fusions as ``llembed.fusion``
  (reciprocal rank, k 60; and weighted min-max, half and half).
- A retrieval set is embedded once per model: the dense row and its ``dense+bm25`` rows come from that pass.
- Each tuned model's training data is checked against every panel set first (its run folder's training config);
  a leak stops the comparison.
- Cells are written to ``<out>/cells.json`` as they finish (a killed run resumes); cells of the same evaluator
  and model already measured by ``examples/compare_general.py`` are reused from its ``cells.json``.
Writes ``<out>/compare.md`` and ``compare.json``.
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
from llembed.backbone import cpu_name  # noqa: E402
from llembed.evaluation.baselines import evaluate_bm25  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.evaluation.evaluate import evaluate  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
# (column, bundled set, MTEB task and subset of the published scores or None where MTEB's text differs)
PANEL = [
    ("STS-B", "stsbenchmark", ("STSBenchmark", "default")),
    ("SICK-R", "sick", ("SICK-R", "default")),
    ("STS17 en-en", "sts17-en-en", ("STS17", "en-en")),
    ("SciFact", "scifact", ("SciFact", "default")),
    ("NFCorpus*", "nfcorpus-preprocessed", None),  # the original preprocessed release, not MTEB's text
    ("BIRCO-ArguAna*", "birco-arguana", None),  # BIRCO's candidate lists, not MTEB's ArguAna corpus
    ("Banking77", "banking77", ("Banking77Classification", "default")),
    ("Emotion", "emotion", ("EmotionClassification", "default")),
    ("AmazonCF en", "amazon-counterfactual-en", ("AmazonCounterfactualClassification", "en")),
]
LEXICAL_SETS = ("SciFact", "NFCorpus*", "BIRCO-ArguAna*")
SGPT = "Muennighoff__SGPT-125M-weightedmean-nli-bitfit"
MINILM = "all-MiniLM-L6-v2 (run here, float32 as published)"
DOCUMENT_TOKENS = 256
FUSED = {"dense+bm25": "dense+bm25 (RRF)", "dense+bm25 (weighted)": "dense+bm25 (weighted ½ ½)"}
TRAINED_ON = {
    "smollm2-135m-tuned": "examples/data/general: SNLI, STS-B train, Banking77 train, stdlib code, MiniLM-distilled "
    "pairs",
    "gemma-3-270m-tuned": "examples/data/general (as smollm2-135m-tuned), then examples/data/retrieval (Python docs "
    "and FAQ, WordNet, Gecko questions) with the general mix down-weighted",
    "examples/results/gemma-general-lora": "examples/data/general: gemma-3-270m-tuned's first stage alone",
}
REUSE = {  # this script's row → compare_general.py's row for the same model under the same evaluator
    "smollm2-135m-tuned": "smollm2-135m-tuned (trained on examples/data/general: SNLI, STS-B train, Banking77 "
    "train, stdlib code, MiniLM-distilled pairs)",
    MINILM: MINILM,
    "untrained SmolLM2-135M (prompteol · last; trained on nothing)": "untrained SmolLM2-135M (prompteol · last; "
    "trained on nothing)",
}


def published(reference: Path, model: str) -> dict[str, float]:
    wanted = {mteb: column for column, _, mteb in PANEL if mteb}
    with reference.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {
        wanted[(row["task"], row["subset"])]: float(row["main_score_x100"])
        for row in rows
        if row["model"] == model and row["split"] == "test" and (row["task"], row["subset"]) in wanted
    }


def decontaminate(model: str) -> None:
    """The run behind a tuned alias or run folder was checked at training time; check its data against this panel
    again."""
    from llembed.evaluation.decontamination import TrainingTexts, check
    from llembed.training import TrainConfig
    from llembed.training.data import load_examples

    configs = {"smollm2-135m-tuned": "general_lora.yaml", "gemma-3-270m-tuned": "gemma_retrieval_lora.yaml"}
    path = ROOT / configs[model] if model in configs else Path(model) / "train_config.yaml"  # an alias, or a run folder
    data: list = []
    while path is not None:  # a run that continued another (init_adapter) was trained on that one's data too
        if not path.is_file():
            sys.exit(f"{model}: no training config to check against the panel ({path})")
        config = TrainConfig.load(path)
        data += [d for d in config.data if d not in data]
        path = ROOT.parent / config.init_adapter / "train_config.yaml" if config.init_adapter else None
    report = check(TrainingTexts.of_examples(load_examples(data)), [load_bundled(n) for _, n, _ in PANEL])
    if report.leaks:
        sys.exit(f"{model}: the training data holds scored items of the panel:\n" + report.summary())
    print(f"decontamination: no panel set leaks into {model}'s training data", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m-tuned"], help="tuned models (aliases, runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "retrieval-panel")
    parser.add_argument("--columns", nargs="+", help="measure only these panel columns now (the rest later)")
    parser.add_argument("--reference", type=Path, default=Path(evaluation.__file__).parent / "reference_scores.tsv")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        decontaminate(model)

    systems = {model: (lambda m=model: Embedder.from_pretrained(m)) for model in args.models}
    systems[MINILM] = lambda: Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32")
    untrained = "untrained SmolLM2-135M (prompteol · last; trained on nothing)"
    systems[untrained] = lambda: Embedder.from_pretrained(None, prompt="prompteol", pooling="last")
    cells_file = args.out / "cells.json"
    cells: dict[str, dict[str, float]] = json.loads(cells_file.read_text()) if cells_file.is_file() else {}
    earlier_file = ROOT / "results" / "general-lora" / "cells.json"
    earlier = json.loads(earlier_file.read_text()) if earlier_file.is_file() else {}

    def keep(row: str, column: str, score: float) -> None:
        cells.setdefault(row, {})[column] = score
        atomic_write_text(cells_file, json.dumps(cells, indent=2))

    for column, name, _ in PANEL:  # BM25 needs no model
        if column in LEXICAL_SETS and column not in cells.get("BM25 (bm25s, stemmed)", {}):
            keep("BM25 (bm25s, stemmed)", column, evaluate_bm25(make_task(load_bundled(name))).main)
    for row, make in systems.items():
        fused = row != untrained  # the untrained default is the floor to stay above, not a retriever to fuse
        for column, _, _ in PANEL:
            old = earlier.get(REUSE.get(row, ""), {}).get(column)
            if old is not None and (column not in LEXICAL_SETS or not fused) and column not in cells.get(row, {}):
                keep(row, column, old)  # same model, same evaluator, same set: measured by compare_general.py
        fused_row = f"{row} · {FUSED['dense+bm25']}"
        wanted = [
            c
            for c, *_ in PANEL
            if (c not in cells.get(row, {}) or (fused and c in LEXICAL_SETS and c not in cells.get(fused_row, {})))
            and (not args.columns or c in args.columns)
        ]
        if not wanted:
            continue
        embedder = make()
        for column in wanted:
            dataset = load_bundled(next(n for c, n, _ in PANEL if c == column))
            lexical = column in LEXICAL_SETS
            limits = {"truncation": True, "max_length": DOCUMENT_TOKENS} if lexical else {}
            started = time.perf_counter()
            task = make_task(dataset)
            results = evaluate(embedder.replace(**limits) if limits else embedder, task, 32, False,
                               lexical and fused, ("rrf", "weighted"))  # fmt: skip
            for result in results:
                if result.variant == "dense":
                    keep(row, column, result.main)
                elif result.variant in FUSED:
                    keep(f"{row} · {FUSED[result.variant]}", column, result.main)
            print(f"{row[:50]:<50} {column:<16} {results[0].main:6.2f}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip

    write_table(args, cells)


def write_table(args, cells: dict[str, dict[str, float]]) -> None:
    columns = [c for c, *_ in PANEL]
    rows = {}
    for row, scores in cells.items():
        base = row.split(" · ")[0]
        label = row
        if base in TRAINED_ON:
            label = row.replace(base, f"{base} (trained on {TRAINED_ON[base]})", 1)
        rows[label] = scores
    rows["SGPT-125M-weightedmean-nli-bitfit (published MTEB; trained on SNLI+MNLI)"] = published(args.reference, SGPT)

    def mean(scores: dict[str, float]) -> str:
        return f"{sum(scores[c] for c in columns) / len(columns):.2f}" if all(c in scores for c in columns) else "–"

    lines = ["| model | " + " | ".join(columns) + " | mean |", "|---|" + "---|" * (len(columns) + 1)]
    for row, scores in rows.items():
        values = [f"{scores[c]:.2f}" if c in scores else "–" for c in columns]
        lines.append(f"| {row} | " + " | ".join(values) + f" | {mean(scores)} |")
    notes = [
        "",
        f"Measured on {cpu_name()} ({os.cpu_count()} cores); scores ×100: Spearman "
        "(STS), nDCG@10 (SciFact, NFCorpus; documents cut at 256 tokens), MAP (BIRCO-ArguAna, its candidate "
        "lists), accuracy (classification, MTEB's protocol). *NFCorpus is the original preprocessed release and "
        "BIRCO-ArguAna is BIRCO's reranking version of ArguAna: not MTEB's text, so SGPT has no comparable number "
        "there. A `· dense+bm25` row fuses that model's dense retrieval with BM25 over the same documents.",
    ]
    table = "\n".join(lines + notes) + "\n"
    atomic_write_text(args.out / "compare.md", table)
    atomic_write_text(args.out / "compare.json", json.dumps({"scores": rows}, indent=2))
    print("\n" + table)


if __name__ == "__main__":
    main()
