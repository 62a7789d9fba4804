"""Multi-vector storage and query cost next to dense: indexes of one collection built one vector a document,
one a chunk, and one a token (with and without token pooling), each searched with the same queries.

    python benchmarks/bench_multivector.py [--model smollm2-135m-tuned] [--set aila-statutes]
        [--json benchmarks/results/bench_multivector.json]

Per index: vectors kept, bytes on disk, seconds to build, milliseconds per query (embedding the query included)
and nDCG@10 of its own search (``dense``, or ``multivector`` MaxSim), all on this CPU in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_name  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.evaluation.metrics import retrieval_scores  # noqa: E402
from llembed.index import VectorIndex, build_index  # noqa: E402
from llembed.index.build import Corpus  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402

CHUNK_TOKENS = 256


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-tuned")
    parser.add_argument("--set", default="aila-statutes")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_multivector.json"))
    args = parser.parse_args()
    dataset = load_bundled(args.set)
    corpus = Corpus(list(dataset.corpus), list(dataset.corpus.values()))
    base = Embedder.from_pretrained(args.model).replace(truncation=True)
    plans = {
        f"dense (cut at {CHUNK_TOKENS})": (base.replace(max_length=CHUNK_TOKENS), {}, "dense"),
        "dense, chunking auto": (base.replace(chunking="auto"), {}, "dense"),
        f"chunk vectors ({CHUNK_TOKENS} tokens)": (
            base.replace(chunk_tokens=CHUNK_TOKENS),
            {"multivector": "chunk"},
            "multivector",
        ),
        "token vectors": (base, {"multivector": "token"}, "multivector"),
        "token vectors, pool factor 4": (base, {"multivector": "token", "pool_factor": 4}, "multivector"),
    }
    rows = []
    work = Path(tempfile.mkdtemp(prefix="bench-multivector-"))
    try:
        for name, (embedder, options, mode) in plans.items():
            started = time.perf_counter()
            path = build_index(embedder, corpus, work / str(len(rows)), show_progress_bar=False, bm25=False,
                               **options)  # fmt: skip
            built = time.perf_counter() - started
            index = VectorIndex.load(path, embedder)
            texts = list(dataset.queries.values())
            started = time.perf_counter()
            found = [index.search(text, k=10, mode=mode)[0] for text in texts]
            per_query = 1000 * (time.perf_counter() - started) / len(texts)
            ranking = {q: [h.id for h in hits] for q, hits in zip(dataset.queries, found, strict=True)}
            ndcg = retrieval_scores(ranking, dataset.qrels)["ndcg_at_10"]
            row = {"index": name, "vectors": index.rows, "bytes": folder_bytes(path), "build_s": built,
                   "ms_per_query": per_query, "ndcg_at_10": ndcg, "recipe_chunking": index.recipe.chunking}  # fmt: skip
            rows.append(row)
            print(f"{name:<34} {row['vectors']:>8} vectors {row['bytes'] / 1e6:8.1f} MB  build {built:6.1f} s  "
                  f"{per_query:7.1f} ms/query  nDCG@10 {ndcg:6.2f}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"model": args.model, "set": args.set, "cpu": cpu_name(), "cores": os.cpu_count(), "rows": rows}
    atomic_write_text(args.json, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
