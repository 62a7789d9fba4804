"""Train a tuning config, then compare the tuned embedder with the untrained recipe and the best training-free
recipe on real held-out data. One command:

    .venv/bin/python examples/tune_and_compare.py [--config examples/stsb_lora.yaml]

- Trains (or resumes an interrupted run; skips training when the run is complete).
- STS Benchmark test (all 1,379 pairs) and SICK-R test (MTEB's 9,927 pairs; no SICK data is trained on).
  STS17 is left out on purpose: its sentences come from SNLI, the training data.
- SciFact (the quick suite's fixed subsample) and BIRCO-ArguAna reranking (first --rerank-queries queries):
  nDCG@10 / MAP must not drop.
Writes ``<output_dir>/compare.md`` and ``compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llembed import Embedder  # noqa: E402
from llembed.evaluation.bundled import load_bundled, subsample_retrieval  # noqa: E402
from llembed.evaluation.datasets import Dataset  # noqa: E402
from llembed.evaluation.evaluate import evaluate  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.training import TrainConfig, train  # noqa: E402
from llembed.training.checkpoint import list_checkpoints  # noqa: E402


def first_queries(dataset: Dataset, count: int) -> Dataset:
    chosen = sorted(dataset.queries)[:count]
    docs = {doc for q in chosen for doc in dataset.qrels[q]}
    return Dataset(
        dataset.type,
        dataset.name,
        dataset.path,
        dataset.meta,
        corpus={d: t for d, t in dataset.corpus.items() if d in docs},
        queries={q: dataset.queries[q] for q in chosen},
        qrels={q: dataset.qrels[q] for q in chosen},
        subsample_note=f"first {len(chosen)} of {len(dataset.queries)} queries and their candidates",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="examples/stsb_lora.yaml")
    parser.add_argument("--rerank-queries", type=int, default=10)
    parser.add_argument(
        "--baselines-from",
        type=Path,
        default=None,
        help="compare.json of an earlier run with the same base recipe: reuse its untrained and training-free "
        "scores (same model, recipe and data give the same numbers) instead of recomputing them",
    )
    args = parser.parse_args()
    config = TrainConfig.load(args.config)
    out = config.output_path
    done = (out / "recipe.yaml").is_file() and any(
        c.step == config.max_steps for c in list_checkpoints(out / "checkpoints")
    )
    if done:
        print(f"{out} is a finished run: evaluating it")
        train_minutes = json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["seconds"] / 60
    else:
        result = train(config, resume=bool(list_checkpoints(out / "checkpoints")))
        train_minutes = result.seconds / 60

    base = dict(config.recipe)
    systems = {
        f"untrained ({base.get('prompt')} · {base.get('pooling')})": lambda: Embedder.from_pretrained(
            base.get("model"), **{k: v for k, v in base.items() if k != "model"}
        ),
        "best training-free of the quick ablation (icl · last)": lambda: Embedder.from_pretrained(
            base.get("model"), prompt="icl", pooling="last"
        ),
        "tuned (this run)": lambda: Embedder.from_pretrained(str(out)),
    }
    datasets = [  # (label, data, recipe limits, STS: every system / retrieval: untrained and tuned)
        ("STS-B test", load_bundled("stsbenchmark"), {}, True),
        ("SICK-R test", load_bundled("sick"), {}, True),
        (
            "SciFact nDCG@10 (quick subsample)",
            subsample_retrieval(load_bundled("scifact"), 40, 100),
            {"truncation": True, "max_length": 192},
            False,
        ),
        (
            f"BIRCO-ArguAna MAP ({args.rerank_queries} queries)",
            first_queries(load_bundled("birco-arguana"), args.rerank_queries),
            {"truncation": True, "max_length": 128},
            False,
        ),
    ]
    rows: dict[str, dict[str, float]] = {}
    reused = json.loads(args.baselines_from.read_text())["scores"] if args.baselines_from else {}
    reused = {name: scores for name, scores in reused.items() if not name.startswith("tuned")}  # never the run
    for name, make in systems.items():
        if name in reused:
            rows[name] = reused[name]
            print(f"{name:<55} reused from {args.baselines_from}", flush=True)
            continue
        embedder = make()
        rows[name] = {}
        for label, dataset, limits, every_system in datasets:
            if not every_system and name.startswith("best"):
                continue
            started = time.perf_counter()
            score = evaluate(embedder.replace(**limits) if limits else embedder, make_task(dataset))[0].main
            rows[name][label] = score
            print(f"{name:<55} {label:<36} {score:6.2f}  ({time.perf_counter() - started:.0f} s)", flush=True)

    labels = [label for label, *_ in datasets]
    lines = [
        f"Training: `{args.config}`, {train_minutes:.1f} min on this machine."
        + (f" Untrained and training-free rows from `{args.baselines_from}`." if reused else ""),
        "",
        "| system | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, scores in rows.items():
        lines.append(
            f"| {name} | " + " | ".join(f"{scores[label]:.2f}" if label in scores else "–" for label in labels) + " |"
        )
    table = "\n".join(lines) + "\n"
    atomic_write_text(out / "compare.md", table)
    atomic_write_text(out / "compare.json", json.dumps({"train_minutes": train_minutes, "scores": rows}, indent=2))
    print("\n" + table)
    print(f"wrote {out / 'compare.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
