"""Serving throughput and latency vs. concurrency: the OpenAI-compatible server with dynamic batching,
on loopback, against the library called in-process on the same texts (one text per call, and one batch).

    python benchmarks/bench_serve.py [--model NAME] [--requests 400] [--concurrency 1,4,16,32] [--json FILE]

Each request embeds one real STS Benchmark test sentence. Prints requests/s, p50/p99 latency and the mean
number of requests merged per model call at each concurrency, the ratio to one sequential client, and checks
every response against the library's vector (max abs difference). The issue's bar: ≥ 2× the one-client rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from serving.conftest import running  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_has_native_bf16, cpu_name
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.serving import create_app  # noqa: E402


def batch_calls(metrics: str) -> tuple[float, float]:
    values = {}
    for line in metrics.splitlines():
        for key in ("llembed_batch_requests_sum", "llembed_batch_requests_count"):
            if line.startswith(key + "{"):
                values[key] = float(line.split()[-1])
    return values.get("llembed_batch_requests_sum", 0.0), values.get("llembed_batch_requests_count", 0.0)


def load(base: str, texts: list[str], expected: np.ndarray, clients: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    worst = [0.0]
    share = len(texts) // clients

    def client(number: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for row in range(number * share, (number + 1) * share):
                started = time.perf_counter()
                response = http.post("/v1/embeddings", json={"input": texts[row]})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors.append(response.text[:200])
                    continue
                got = np.array(response.json()["data"][0]["embedding"], dtype=np.float32)
                worst[0] = max(worst[0], float(np.abs(got - expected[row]).max()))

    before = batch_calls(httpx.get(base + "/metrics").text)
    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    after = batch_calls(httpx.get(base + "/metrics").text)
    merged = (after[0] - before[0]) / max(1.0, after[1] - before[1])
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "requests_per_model_call": merged,
        "max_abs_diff": worst[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: SmolLM2-135M-Instruct")
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--concurrency", default="1,4,16,32")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = load_bundled("stsbenchmark").rows
    texts = [t for r in rows for t in (r["sentence1"], r["sentence2"])][: args.requests]
    embedder = Embedder.from_pretrained(args.model)
    print(f"{embedder}\n{len(texts)} requests of one STS-B sentence each")
    print(f"cpu: {cpu_name()}, native bf16: {cpu_has_native_bf16()}")

    started = time.perf_counter()
    expected = np.stack([embedder.encode(t) for t in texts])
    one_by_one = len(texts) / (time.perf_counter() - started)
    started = time.perf_counter()
    batched = embedder.encode(texts)
    in_batch = len(texts) / (time.perf_counter() - started)
    assert np.abs(batched - expected).max() < 1e-4

    results = []
    with running(create_app({"model": embedder})) as base:
        httpx.post(base + "/v1/embeddings", json={"input": "warm up"})
        for clients in levels:
            result = load(base, texts, expected, clients)
            results.append(result)
    sequential = results[0]["req_per_s"] if levels[0] == 1 else None
    print(f"\nlibrary in-process: {one_by_one:.1f} texts/s one per call, {in_batch:.1f} texts/s as one batch\n")
    print(
        f"{'clients':>7} {'req/s':>8} {'× 1 client':>10} {'p50 ms':>8} {'p99 ms':>8} {'req/call':>8} "
        f"{'errors':>6} {'max|Δ|':>9}"
    )
    for r in results:
        ratio = f"{r['req_per_s'] / sequential:.2f}×" if sequential else "–"
        print(
            f"{r['clients']:>7} {r['req_per_s']:>8.1f} {ratio:>10} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['requests_per_model_call']:>8.1f} {r['errors']:>6} {r['max_abs_diff']:>9.1e}"
        )
    best = max(r["req_per_s"] for r in results)
    if sequential:
        verdict = "meets" if best >= 2 * sequential else "misses"
        print(f"\nbest {best:.1f} req/s = {best / sequential:.2f}× one sequential client ({verdict} the 2× bar)")
    if args.json:
        report = {
            "model": str(embedder.recipe.model),
            "library_one_per_call": one_by_one,
            "library_batch": in_batch,
            "levels": results,
        }
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
