"""Task scores by dtype: does a faster path hold quality? STS-B test (all 1,379 pairs, Spearman) and the quick
suite's SciFact subsample (40 queries, documents cut at 192 tokens, nDCG@10), PromptEOL · last token on the
default model, for float32 (the reference), bfloat16 and int8, plus the minimum cosine of each to float32.

    python benchmarks/quality_by_dtype.py [--dtypes float32 bfloat16 int8] [--json FILE]

Under ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2`` it measures the kernels of
a CPU without AVX-512 (as ``bench_encode.py --isa-cap AVX2`` does).

The bar (issue 16): every path within 0.5 points of float32 on both tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from llembed import Embedder
from llembed.backbone import cpu_has_native_bf16, cpu_name
from llembed.evaluation.bundled import load_bundled, subsample_retrieval
from llembed.evaluation.evaluate import evaluate
from llembed.evaluation.tasks import make_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"])
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "quality_by_dtype.json")
    args = parser.parse_args()
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    capped = f" (oneDNN capped at {isa_cap})" if isa_cap else ""
    print(f"machine: {platform.machine()}, {cpu_name()}, native bf16: {cpu_has_native_bf16()}{capped}")
    sts = make_task(load_bundled("stsbenchmark"))
    scifact = make_task(subsample_retrieval(load_bundled("scifact"), 40, 100))
    probe = [row["sentence1"] for row in load_bundled("stsbenchmark").rows[:300]]
    rows, reference = [], None
    for dtype in args.dtypes:
        embedder = Embedder.from_pretrained(None, dtype=dtype, prompt="prompteol", pooling="last")
        documents = embedder.replace(max_length=192, truncation=True)
        started = time.perf_counter()
        sts_score = evaluate(embedder, sts)[0].main
        scifact_score = evaluate(documents, scifact)[0].main
        vectors = embedder.encode(probe, normalize=True, show_progress_bar=False)
        reference = vectors if reference is None else reference
        row = {
            "dtype": dtype,
            "stsb_spearman": sts_score,
            "scifact_ndcg10": scifact_score,
            "min_cosine_to_first": float(np.min((vectors * reference).sum(axis=1))),
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        print(
            f"  {dtype:<9} STS-B {sts_score:6.2f}  SciFact {scifact_score:6.2f}  "
            f"min cosine to {args.dtypes[0]} {row['min_cosine_to_first']:.4f}  ({row['seconds']:.0f} s)",
            flush=True,
        )
    first = rows[0]
    for row in rows[1:]:
        d_sts = row["stsb_spearman"] - first["stsb_spearman"]  # scores are in points already
        d_sci = row["scifact_ndcg10"] - first["scifact_ndcg10"]
        verdict = "holds" if abs(d_sts) <= 0.5 and abs(d_sci) <= 0.5 else "MISSES"
        print(f"  {row['dtype']} vs {first['dtype']}: STS-B {d_sts:+.2f}, SciFact {d_sci:+.2f} → {verdict} the 0.5 bar")
    machine = {"cpu": cpu_name(), "native_bf16": cpu_has_native_bf16(), "isa_cap": isa_cap}
    report = {"machine": machine, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
