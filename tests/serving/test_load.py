"""Load: 32 concurrent clients × 50 requests on loopback, 0 errors, every response equal to the library's.

Throughput against the one-client rate is printed here and measured by ``benchmarks/bench_serve.py`` (timings
are benchmarks' business, not a unit test's); this test checks that merged batches answer correctly.
"""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np

from llembed.evaluation.bundled import load_bundled
from llembed.serving import create_app

from .conftest import running

CLIENTS, REQUESTS = 32, 50


def test_32_clients_by_50_requests_all_correct(tiny_embedder):
    rows = load_bundled("stsbenchmark").rows
    texts = [text for row in rows for text in (row["sentence1"], row["sentence2"])][: CLIENTS * REQUESTS]
    expected = tiny_embedder.encode(texts)
    app = create_app({"tiny": tiny_embedder})
    errors, mismatches, latencies = [], [], []
    with running(app) as base:

        def client(number: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                for i in range(REQUESTS):
                    row = number * REQUESTS + i
                    started = time.perf_counter()
                    response = http.post("/v1/embeddings", json={"input": texts[row]})
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        errors.append((row, response.status_code, response.text[:200]))
                        continue
                    got = np.array(response.json()["data"][0]["embedding"], dtype=np.float32)
                    if np.abs(got - expected[row]).max() > 1e-5:
                        mismatches.append(row)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        metrics = httpx.get(base + "/metrics").text
    assert errors == []
    assert mismatches == []
    assert len(latencies) == CLIENTS * REQUESTS
    merged = [line for line in metrics.splitlines() if line.startswith('llembed_batch_requests_sum{model="tiny"}')]
    calls = [line for line in metrics.splitlines() if line.startswith('llembed_batch_requests_count{model="tiny"}')]
    requests_served, model_calls = float(merged[0].split()[-1]), float(calls[0].split()[-1])
    assert requests_served == CLIENTS * REQUESTS
    assert model_calls < requests_served  # concurrent requests were merged into shared model calls
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    print(
        f"\n{CLIENTS}×{REQUESTS}: {len(latencies) / elapsed:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"{requests_served / model_calls:.1f} requests per model call"
    )
