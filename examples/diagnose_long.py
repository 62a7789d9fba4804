"""Issue 29's diagnosis: long documents and long queries read every way (cut, chunks alone, late chunks causal
and bidirectional, token vectors) and scored every way that pairs them (one vector, MaxSim / MaxP, top 2).

    .venv/bin/python examples/diagnose_long.py [--model smollm2-135m-tuned] [--sets aila-statutes]
        [--poolings last mean] [--queries N]

Each side's reading is kept in ``--work`` (a killed run resumes, a later run with more readings reuses them).
Writes ``<out>/<model>.md`` (every pairing, nDCG@10 per set, and each reading's seconds) and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_name  # noqa: E402
from llembed.bm25 import bm25_scores  # noqa: E402
from llembed.evaluation.bundled import load_bundled, subsample_retrieval  # noqa: E402
from llembed.evaluation.long_documents import READINGS, Read, evaluate_long  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.multivector import MultiVectors  # noqa: E402

ROOT = Path(__file__).resolve().parent
QUERY_READINGS = ["cut 256", "cut 512", "whole", "chunks", "late chunks", "tokens"]
DOCUMENT_READINGS = list(READINGS)


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class DiskCache:
    """A side's reading as ``.npz`` under one folder (vectors, offsets, mean vectors, seconds)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, side: str, name: str, compute) -> Read:
        path = self.folder / f"{side}-{slug(name)}.npz"
        if path.is_file():
            with np.load(path) as kept:
                multi = MultiVectors(kept["vectors"], kept["offsets"])
                return Read(multi, kept["means"], float(kept["seconds"]), bool(kept["kept"]))
        print(f"  reading the {side} side: {name}", flush=True)
        read = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.npz")
        np.savez(temporary, vectors=read.multi.vectors, offsets=read.multi.offsets, means=read.means,
                 seconds=read.seconds, kept=read.kept)  # fmt: skip
        os.replace(temporary, path)
        return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-tuned")
    parser.add_argument("--sets", nargs="+", default=["aila-statutes"])
    parser.add_argument("--queries", type=int, default=0, help="a sample of this many queries (0: all)")
    parser.add_argument("--extra-documents", type=int, default=0, help="with --queries: random unjudged documents")
    parser.add_argument("--poolings", nargs="+", default=["last", "mean"])
    parser.add_argument("--query-readings", nargs="+", default=QUERY_READINGS)
    parser.add_argument("--document-readings", nargs="+", default=DOCUMENT_READINGS)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "long-documents")
    parser.add_argument("--work", type=Path, default=Path("runs") / "long-documents")
    args = parser.parse_args()
    base = Embedder.from_pretrained(args.model)
    kept = args.out / f"{slug(args.model)}.json"  # earlier runs' rows stay; this run's replace the same cells
    results: dict = json.loads(kept.read_text()) if kept.is_file() else {"model": args.model, "sets": {}}
    results["cpu"] = cpu_name()
    for name in args.sets:
        dataset = load_bundled(name)
        if args.queries:
            dataset = subsample_retrieval(dataset, args.queries, args.extra_documents)
        task = make_task(dataset)
        requests = task.requests()
        bm25 = task.score_similarity(bm25_scores(requests["query"], requests["document"]))["ndcg_at_10"]
        entry = results["sets"].get(name, {"rows": [], "seconds": {}}) | {"note": dataset.subsample_note, "bm25": bm25}
        sample = (
            (f"-{args.queries}q" + (f"+{args.extra_documents}d" if args.extra_documents else ""))
            if args.queries
            else ""
        )
        for pooling in args.poolings:
            embedder = base.replace(pooling=pooling)
            cache = DiskCache(args.work / slug(args.model) / f"{name}{sample}" / pooling)
            print(f"{name} · {pooling} pooling", flush=True)
            rows, seconds = evaluate_long(embedder, task, args.query_readings, args.document_readings, cache=cache)
            new = {(pooling, r["query"], r["document"], r["scoring"]): {"pooling": pooling, **r} for r in rows}
            old = {(r["pooling"], r["query"], r["document"], r["scoring"]): r for r in entry["rows"]}
            entry["rows"] = list((old | new).values())
            entry["seconds"] |= {f"{pooling} · {key}": value for key, value in seconds.items()}
        results["sets"][name] = entry
    write(args, results)


def write(args, results: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = slug(args.model)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(results, indent=1))
    sets = list(results["sets"])
    table: dict[tuple, dict[str, float]] = {}
    for name, entry in results["sets"].items():
        for row in entry["rows"]:
            key = (row["pooling"], row["query"], row["document"], row["scoring"])
            table.setdefault(key, {})[name] = row["ndcg_at_10"]
    baseline = {name: table.get(("last", "cut 256", "cut 256", "vector"), {}).get(name) for name in sets}
    lines = [
        f"# Long documents: every reading × scoring, {args.model} (nDCG@10)",
        "",
        f"CPU: {results['cpu']}. Chunks of 256 tokens, no overlap; `whole` and late chunking read up to 8,192 "
        "tokens a pass. Rows sorted by the first set; Δ against cutting both sides at 256 with last-token "
        "pooling (the plain truncation a user gets by default).",
        "",
        *(
            f"- {name}: {results['sets'][name]['note'] or 'all queries and documents'}; BM25 "
            f"{results['sets'][name]['bm25']:.2f}"
            for name in sets
        ),
        "",
        "| pooling | query | document | scoring | " + " | ".join(sets) + " |",
        "|---|---|---|---|" + "---|" * len(sets),
    ]
    ordered = sorted(table.items(), key=lambda item: -item[1].get(sets[0], -1))
    for (pooling, query, document, scoring), scores in ordered:
        cells = []
        for name in sets:
            if name not in scores:
                cells.append("–")
                continue
            delta = f" ({scores[name] - baseline[name]:+.2f})" if baseline[name] is not None else ""
            cells.append(f"{scores[name]:.2f}{delta}")
        lines.append(f"| {pooling} | {query} | {document} | {scoring} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds to read each side (on the CPU above):", "", "| reading | " + " | ".join(sets) + " |",
              "|---|" + "---|" * len(sets)]  # fmt: skip
    keys = dict.fromkeys(key for name in sets for key in results["sets"][name]["seconds"])
    for key in keys:
        cells = [f"{results['sets'][name]['seconds'].get(key, float('nan')):.0f}" for name in sets]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    atomic_write_text(args.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
