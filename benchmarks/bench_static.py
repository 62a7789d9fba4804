"""The static tier against the recipe it was distilled from, and against sentence-transformers' StaticEmbedding.

    python benchmarks/bench_static.py [--model smollm2-135m-tuned] [--static runs/static/smollm2-135m-tuned]
        [--dims 256] [--refine 0] [--json benchmarks/results/bench_static.json]

1. Distils ``--model`` (its own recipe) into a static model at ``--static`` unless one is there
   (``llembed.static_distill.distill_static``; ``--refine N``: then fitted to the recipe's vectors of N
   licence-clean training texts), and reports how long that took.
2. Speed, one process, the same texts (every unique STS-B test sentence): llembed with the recipe in the dtype
   ``auto`` picks, the static model through llembed's Embedder, and the same folder through
   sentence-transformers (``SentenceTransformer(folder)``: its ``StaticEmbedding``, the peer). Texts/s and ratios.
3. Quality of the static model on STS-B (Spearman) and SciFact (nDCG@10, texts cut at 256 tokens as in the
   retrieval panel, ``examples/compare_retrieval.py``), and the share of the recipe's scores it keeps: the
   recipe's from that panel's ``compare.json`` (same evaluator and protocol), or measured with
   ``--recipe-quality`` (SciFact is about 15 min of CPU). Neither model trained on either set.
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

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_has_native_bf16, cpu_name  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.evaluation.evaluate import evaluate  # noqa: E402
from llembed.evaluation.tasks import make_task  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.static_distill import distill_static  # noqa: E402

DOCUMENT_TOKENS = 256


def sentences() -> list[str]:
    rows = load_bundled("stsbenchmark").rows
    return list(dict.fromkeys([r["sentence1"] for r in rows] + [r["sentence2"] for r in rows]))


def rate(encode, texts: list[str], repeats: int = 1) -> float:
    encode(texts[:8])  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        encode(texts)
    return repeats * len(texts) / (time.perf_counter() - started)


PANEL = Path(__file__).resolve().parents[1] / "examples" / "results" / "retrieval-panel" / "compare.json"


def quality(embedder: Embedder) -> dict[str, float]:
    sts = evaluate(embedder, make_task(load_bundled("stsbenchmark")))[0].scores["main"]
    cut = embedder.replace(max_length=DOCUMENT_TOKENS, truncation=True)
    scifact = evaluate(cut, make_task(load_bundled("scifact")))[0].scores["ndcg_at_10"]
    return {"stsb": sts, "scifact": scifact}


def panel_quality(model: str) -> dict[str, float] | None:
    """The recipe's STS-B and SciFact from the retrieval panel (its dense row), when it has the model."""
    scores = json.loads(PANEL.read_text(encoding="utf-8"))["scores"] if PANEL.is_file() else {}
    row = next((v for k, v in scores.items() if k.startswith(f"{model} (trained on") and "·" not in k), None)
    return None if row is None else {"stsb": row["STS-B"], "scifact": row["SciFact"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-tuned")
    parser.add_argument("--static", type=Path, default=Path("runs/static/smollm2-135m-tuned"))
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--refine", type=int, default=0, help="distil with this many texts of refinement")
    parser.add_argument("--skip-quality", action="store_true", help="speed only")
    parser.add_argument("--recipe-quality", action="store_true", help="measure the recipe too (else the panel's)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/bench_static.json"))
    args = parser.parse_args()
    print(f"CPU: {cpu_name()} ({platform.machine()}), native bf16: {cpu_has_native_bf16()}")

    recipe = Embedder.from_pretrained(args.model)
    distill_seconds = None
    if not (args.static / "modules.json").is_file():
        started = time.perf_counter()
        distill_static(recipe, args.static, dims=args.dims, show_progress_bar=True, refine=args.refine)
        distill_seconds = time.perf_counter() - started
    static = Embedder.from_pretrained(str(args.static))

    from sentence_transformers import SentenceTransformer

    peer = SentenceTransformer(str(args.static), device="cpu")
    texts = sentences()
    speed = {
        f"llembed {args.model} ({recipe.backbone.dtype_name})": rate(lambda t: recipe.encode(t, batch_size=32), texts),
        "llembed static": rate(lambda t: static.encode(t, batch_size=1024), texts, repeats=5),
        "sentence-transformers StaticEmbedding": rate(lambda t: peer.encode(t, batch_size=1024), texts, repeats=5),
    }
    names = list(speed)
    print(f"\n{len(texts)} STS-B sentences, texts/s:")
    for name, value in speed.items():
        print(f"  {name:45s} {value:10,.0f}  ({value / speed[names[0]]:7.1f}× the recipe)")
    print(f"  llembed static / sentence-transformers static: {speed[names[1]] / speed[names[2]]:.2f}×")

    result = {
        "cpu": cpu_name(),
        "native_bf16": cpu_has_native_bf16(),
        "model": args.model,
        "static": str(args.static),
        "dims": static.dimension,
        "refined": json.loads((args.static / "llembed_static.json").read_text(encoding="utf-8")).get("refined"),
        "distill_seconds": distill_seconds,
        "texts": len(texts),
        "texts_per_second": speed,
    }
    if not args.skip_quality:
        reference = None if args.recipe_quality else panel_quality(args.model)
        result["quality"] = {"recipe": reference or quality(recipe), "static": quality(static)}
        result["quality"]["recipe_from"] = "examples/results/retrieval-panel" if reference else "measured here"
        kept = {k: result["quality"]["static"][k] / result["quality"]["recipe"][k] for k in ("stsb", "scifact")}
        result["quality"]["kept"] = kept
        print(f"\nquality (x100): {json.dumps(result['quality'], indent=2)}")
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
