"""Corpus embedding throughput: ``embed-corpus`` on Ray Data (N actors) vs. the single-process runner vs. the
library's plain ``encode_documents`` (no files), on the same real SciFact abstracts and the same recipe.

    python benchmarks/bench_corpus.py [--data scifact|sentences] [--model NAME] [--rows 160] [--actors 2]
                                      [--shard-rows 20] [--json FILE]

``scifact``: real SciFact abstracts (long, ~300 tokens); ``sentences``: STS Benchmark test sentences (short).

Prints wall time and rows/s of each (model loading and, for Ray, cluster start included: that is what a user
waits for), the ratio to the plain library call, and checks that the Ray output equals the single-process
output. Run it on a real cluster with ``--address auto`` from a node of that cluster.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

from llembed import Embedder, Recipe  # noqa: E402
from llembed.backbone import cpu_name
from llembed.corpus import embed_corpus, read_vectors  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", choices=("scifact", "sentences"), default="scifact")
    parser.add_argument("--rows", type=int, default=160)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: a local Ray)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    if args.data == "scifact":
        corpus = list(load_bundled("scifact").corpus.items())[: args.rows]
    else:
        rows = load_bundled("stsbenchmark").rows
        sentences = list(dict.fromkeys(s for row in rows for s in (row["sentence1"], row["sentence2"])))
        corpus = [(f"stsb-{i}", text) for i, text in enumerate(sentences[: args.rows])]
    texts = [text for _, text in corpus]
    recipe = Recipe(model=args.model, prompt="prompteol", pooling="last")
    work = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    with (work / "docs.jsonl").open("w") as handle:
        for doc_id, text in corpus:
            handle.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    what = "SciFact abstracts" if args.data == "scifact" else "STS Benchmark sentences"
    print(f"{len(texts)} {what}, {os.cpu_count()} CPUs ({cpu_name()}), recipe {recipe.prompt} · {recipe.pooling}")

    rows = []

    started = time.perf_counter()
    embedder = Embedder.from_recipe(recipe)
    plain = embedder.encode_documents(texts, batch_size=args.batch_size)
    rows.append(("library encode_documents (1 process, no files)", time.perf_counter() - started))
    del embedder

    runs = {}
    for runner in ("local", "ray"):
        import ray

        out = work / runner
        started = time.perf_counter()
        if runner == "ray" and not ray.is_initialized():
            ray.init(address=args.address, include_dashboard=False, logging_level=logging.WARNING)
        embed_corpus(
            [work / "docs.jsonl"],
            out,
            recipe,
            shard_rows=args.shard_rows,
            runner=runner,
            concurrency=args.actors if runner == "ray" else None,
            show_progress_bar=False,
        )
        label = "embed-corpus, single process" if runner == "local" else f"embed-corpus on Ray, {args.actors} actors"
        rows.append((label, time.perf_counter() - started))
        runs[runner] = read_vectors(out)

    same_ids = runs["ray"].ids == runs["local"].ids
    worst = float(np.abs(runs["ray"].vectors - runs["local"].vectors).max())
    worst_plain = float(np.abs(runs["local"].vectors - plain).max())
    base = rows[0][1]
    print(f"\n{'':<52}{'seconds':>9}{'rows/s':>9}{'× library':>11}")
    results = []
    for label, seconds in rows:
        print(f"{label:<52}{seconds:>9.1f}{len(texts) / seconds:>9.1f}{base / seconds:>11.2f}")
        results.append({"run": label, "seconds": round(seconds, 2), "rows_per_s": round(len(texts) / seconds, 2)})
    print(f"\nRay output = single-process output: ids {'equal' if same_ids else 'DIFFER'}, max |Δ| {worst:.1e}")
    print(f"single-process output vs library: max |Δ| {worst_plain:.1e}")
    if args.json:
        report = {
            "machine": {
                "cpus": os.cpu_count(),
                "cpu": cpu_name(),
                "platform": platform.platform(),
                "python": sys.version.split()[0],
            },
            "data": args.data,
            "rows": len(texts),
            "actors": args.actors,
            "shard_rows": args.shard_rows,
            "results": results,
            "ray_equals_local": same_ids and worst <= 1e-5,
            "max_abs_diff_ray_local": worst,
        }
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
