"""Serving throughput and latency vs. concurrency: the OpenAI-compatible server (its own process, as deployed)
under concurrent clients, against the library's in-process batch rate on the same texts; optionally against a
peer server (infinity-emb) on the same model.

    python benchmarks/bench_serve.py [--model NAME] [--requests 640] [--concurrency 1,8,32]
                                     [--encoding base64|float] [--backend torch|openvino|auto]
                                     [--infinity-venv DIR [--install-infinity]]
                                     [--json FILE]

Each request embeds one real STS Benchmark test sentence. The clients are asyncio tasks in this process; the
server is ``llembed serve`` in another, so they share the CPU as a client and a server on one machine do.
``--encoding base64`` (the default) is what the OpenAI Python client sends. Printed per concurrency: requests/s,
its share of the library's in-process batch rate (the bar: ≥ 85 % at 32 clients), p50/p99 latency, requests
merged per model call, and the largest difference of a response from the library's vector.

``--fairness``: instead, the latency of small requests (one sentence each, 4 clients, 48 requests) alone and
while one 2,048-text request is running (sent 1 s before them): p50/p99 of the small ones both ways, and how long
the big one took (issue 32: a small request must not wait for a whole big one).

``--infinity-venv DIR``: also serve all-MiniLM-L6-v2 with infinity-emb (``DIR/bin/infinity_emb``) and with
llembed, and load both the same way. infinity-emb pins an older sentence-transformers, so it lives in its own
venv: ``--install-infinity`` creates it (``pip install infinity-emb[server,torch]`` with torch 2.13 CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_has_native_bf16, cpu_name  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.io_utils import atomic_write_text  # noqa: E402
from llembed.model_sources import locate  # noqa: E402

TARGET_SHARE = 0.85
INFINITY_VERSION = "0.0.78"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A server process on loopback, started and awaited until ``health`` answers, stopped on exit."""

    def __init__(self, command: list[str], base: str, health: str, env: dict | None = None) -> None:
        self.base, self.health = base, health
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 600  # a first load may dequantize or build caches
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.base + self.health, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start in 600 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def llembed_server(model: str | None, max_wait_ms: float | None = None, backend: str = "torch") -> Server:
    port = free_port()
    command = [sys.executable, "-c", "from llembed.cli import app; app()", "serve", "--port", str(port)]
    command += ["-m", model] if model else []
    command += ["--backend", backend]
    command += ["--max-wait-ms", str(max_wait_ms)] if max_wait_ms is not None else []
    return Server(command, f"http://127.0.0.1:{port}", "/health")


def infinity_server(venv: Path, model_path: Path) -> Server:
    port = free_port()
    command = [str(venv / "bin" / "infinity_emb"), "v2", "--model-id", str(model_path), "--port", str(port)]
    command += ["--engine", "torch", "--device", "cpu", "--url-prefix", ""]
    env = dict(os.environ, INFINITY_ANONYMOUS_USAGE_STATS="0", DO_NOT_TRACK="1")
    return Server(command, f"http://127.0.0.1:{port}", "/health", env)


def install_infinity(venv: Path) -> None:
    if (venv / "bin" / "infinity_emb").is_file():
        return
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    spec = [f"infinity-emb[server,torch]=={INFINITY_VERSION}", "torch==2.13.0"]
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *spec], check=True)


def batch_calls(metrics: str) -> tuple[float, float]:
    values = {}
    for line in metrics.splitlines():
        for key in ("llembed_batch_requests_sum", "llembed_batch_requests_count"):
            if line.startswith(key + "{"):
                values[key] = float(line.split()[-1])
    return values.get("llembed_batch_requests_sum", 0.0), values.get("llembed_batch_requests_count", 0.0)


def decode(row: dict) -> np.ndarray:
    vector = row["embedding"]
    if isinstance(vector, str):
        return np.frombuffer(base64.b64decode(vector), dtype="<f4")
    return np.asarray(vector, dtype=np.float32)


async def load(
    server: Server, path: str, texts: list[str], expected: np.ndarray, clients: int, body: dict, http_client: str
) -> dict:
    """``clients`` closed-loop clients on one connection each; ``http_client`` names the library they use."""
    latencies: list[float] = []
    errors: list[str] = []
    worst = 0.0
    rows = iter(range(len(texts)))

    async def client(post) -> None:
        nonlocal worst
        for row in rows:  # one shared iterator: every client takes the next text when it is free
            started = time.perf_counter()
            status, payload = await post(path, body | {"input": [texts[row]]})
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(str(payload)[:200])
                continue
            got = decode(payload["data"][0])
            worst = max(worst, float(np.abs(got - expected[row]).max()))

    async with http_session(server.base, clients, http_client) as (get, post):
        metrics = await get("/metrics") if path.startswith("/v1") else ""
        started = time.perf_counter()
        await asyncio.gather(*(client(post) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        after = await get("/metrics") if metrics else ""
    before_calls, after_calls = batch_calls(metrics), batch_calls(after)
    merged = (after_calls[0] - before_calls[0]) / max(1.0, after_calls[1] - before_calls[1]) if metrics else None
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return {
        "clients": clients,
        "http_client": http_client,
        "requests": len(latencies),
        "errors": len(errors),
        "req_per_s": len(latencies) / elapsed,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "requests_per_model_call": merged,
        "max_abs_diff": worst,
    }


@contextlib.asynccontextmanager
async def http_session(base: str, clients: int, http_client: str):
    """``(get text, post JSON → (status, JSON))`` over a pool of ``clients`` keep-alive connections. aiohttp costs
    the machine less CPU per request than httpx, which matters when clients and server share two cores."""
    if http_client == "aiohttp":
        import aiohttp

        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(300)) as http:

            async def get(path: str) -> str:
                async with http.get(path) as response:
                    return await response.text()

            async def post(path: str, payload: dict) -> tuple[int, dict | str]:
                async with http.post(path, json=payload) as response:
                    ok = response.status == 200
                    return response.status, await (response.json() if ok else response.text())

            yield get, post
        return
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as http:

        async def get(path: str) -> str:
            return (await http.get(path)).text

        async def post(path: str, payload: dict) -> tuple[int, dict | str]:
            response = await http.post(path, json=payload)
            return response.status_code, response.json() if response.status_code == 200 else response.text

        yield get, post


def library_rates(embedder: Embedder, texts: list[str]) -> tuple[float, float, np.ndarray]:
    """(texts/s one per call, texts/s as one batch, the batch's vectors), in this process, server not running."""
    embedder.encode(texts[:8])  # warm up
    sample = texts[: min(len(texts), 160)]
    started = time.perf_counter()
    for text in sample:
        embedder.encode(text)
    one_by_one = len(sample) / (time.perf_counter() - started)
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    return one_by_one, len(texts) / (time.perf_counter() - started), vectors


async def fairness(server: Server, texts: list[str], big: list[str], http_client: str) -> dict:
    """Small requests' latency alone, then with one big request sent a second before them."""
    small = texts[:48]

    async def smalls(post) -> list[float]:
        latencies: list[float] = []
        rows = iter(small)

        async def client() -> None:
            for text in rows:
                started = time.perf_counter()
                status, payload = await post("/v1/embeddings", {"input": [text], "encoding_format": "base64"})
                if status != 200:
                    raise RuntimeError(str(payload)[:300])
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(4)))
        return latencies

    async with http_session(server.base, 8, http_client) as (_, post):
        alone = await smalls(post)
        started = time.perf_counter()
        big_task = asyncio.create_task(post("/v1/embeddings", {"input": big, "encoding_format": "base64"}))
        await asyncio.sleep(1.0)
        beside = await smalls(post)
        status, _ = await big_task
        big_seconds = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"the big request failed with {status}")
    p = {name: np.percentile(values, [50, 99]) * 1000 for name, values in (("alone", alone), ("beside", beside))}
    return {
        "small_alone_p50_ms": float(p["alone"][0]),
        "small_alone_p99_ms": float(p["alone"][1]),
        "small_beside_big_p50_ms": float(p["beside"][0]),
        "small_beside_big_p99_ms": float(p["beside"][1]),
        "big_texts": len(big),
        "big_seconds": big_seconds,
        "small_beside_big_ms": [round(1000 * v, 1) for v in beside],
    }


def print_levels(title: str, results: list[dict], batch_rate: float) -> None:
    print(f"\n{title}")
    print(f"{'clients':>7} {'req/s':>8} {'of batch':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/call':>8} {'errors':>6} "
          f"{'max|Δ|':>9}")  # fmt: skip
    for r in results:
        merged = f"{r['requests_per_model_call']:.1f}" if r["requests_per_model_call"] is not None else "–"
        print(
            f"{r['clients']:>7} {r['req_per_s']:>8.1f} {r['req_per_s'] / batch_rate:>8.0%} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {merged:>8} {r['errors']:>6} {r['max_abs_diff']:>9.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: SmolLM2-135M-Instruct")
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--encoding", choices=["base64", "float"], default="base64")
    parser.add_argument("--infinity-venv", type=Path, default=None)
    parser.add_argument("--install-infinity", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--backend", default="torch", help="torch | openvino | auto, for the library and the server")
    parser.add_argument("--max-wait-ms", type=float, default=None, help="the server's batching wait (its default)")
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp", help="the clients' HTTP library")
    parser.add_argument("--fairness", action="store_true", help="small requests' latency beside a 2,048-text one")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = load_bundled("stsbenchmark").rows
    texts = [t for r in rows for t in (r["sentence1"], r["sentence2"])][: args.requests]
    print(f"cpu: {cpu_name()}, native bf16: {cpu_has_native_bf16()}, {os.cpu_count()} cores")
    print(f"{len(texts)} requests of one STS-B sentence each, encoding_format={args.encoding}, client {args.client}")
    body = {"encoding_format": args.encoding}
    if args.fairness:
        big = [t for r in rows for t in (r["sentence1"], r["sentence2"])][-2048:]
        with llembed_server(args.model, args.max_wait_ms, args.backend) as server:
            httpx.post(server.base + "/v1/embeddings", json={"input": "warm up"}, timeout=120)
            found = asyncio.run(fairness(server, texts, big, args.client))
        print(f"small requests alone:            p50 {found['small_alone_p50_ms']:7.0f} ms   "
              f"p99 {found['small_alone_p99_ms']:7.0f} ms")  # fmt: skip
        print(f"beside a {len(big)}-text request:    p50 {found['small_beside_big_p50_ms']:7.0f} ms   "
              f"p99 {found['small_beside_big_p99_ms']:7.0f} ms")  # fmt: skip
        print(f"the big request took {found['big_seconds']:.1f} s")
        if args.json:
            atomic_write_text(args.json, json.dumps({"cpu": cpu_name(), "fairness": found}, indent=2) + "\n")
        return

    embedder = Embedder.from_pretrained(args.model, backend=args.backend)
    one_by_one, in_batch, expected = library_rates(embedder, texts)
    print(f"{embedder}\nlibrary in-process: {one_by_one:.1f} texts/s one per call, {in_batch:.1f} as one batch")
    del embedder
    gc.collect()
    with llembed_server(args.model, args.max_wait_ms, args.backend) as server:
        httpx.post(server.base + "/v1/embeddings", json={"input": "warm up"}, timeout=120)
        results = [asyncio.run(load(server, "/v1/embeddings", texts, expected, c, body, args.client)) for c in levels]
    print_levels("llembed serve (its own process)", results, in_batch)
    at_most = max(results, key=lambda r: r["clients"])
    share = at_most["req_per_s"] / in_batch
    verdict = "meets" if share >= TARGET_SHARE else "misses"
    print(f"\n{at_most['clients']} clients: {share:.0%} of the library's batch rate ({verdict} the 85 % bar)")
    report = {
        "cpu": cpu_name(),
        "model": args.model or "smollm2-135m",
        "backend": args.backend,
        "encoding": args.encoding,
        "http_client": args.client,
        "library_one_per_call": one_by_one,
        "library_batch": in_batch,
        "levels": results,
    }

    if args.infinity_venv:
        if args.install_infinity:
            install_infinity(args.infinity_venv)
        report["peer"] = compare_with_infinity(args.infinity_venv, texts, max(levels), body, args.client)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")


def compare_with_infinity(venv: Path, texts: list[str], clients: int, body: dict, http_client: str) -> dict:
    """all-MiniLM-L6-v2 served by llembed and by infinity-emb, the same load on each."""
    minilm = Embedder.from_pretrained("all-minilm-l6-v2", dtype="float32")
    _, in_batch, expected = library_rates(minilm, texts)
    del minilm
    gc.collect()
    peer = {"library_batch": in_batch}
    with llembed_server("all-minilm-l6-v2") as server:
        httpx.post(server.base + "/v1/embeddings", json={"input": "warm up"}, timeout=120)
        peer["llembed"] = asyncio.run(load(server, "/v1/embeddings", texts, expected, clients, body, http_client))
    model_path = locate("all-minilm-l6-v2").path
    with infinity_server(venv, model_path) as server:
        infinity_body = body | {"model": str(model_path)}
        httpx.post(server.base + "/embeddings", json=infinity_body | {"input": ["warm up"]}, timeout=120)
        peer["infinity"] = asyncio.run(
            load(server, "/embeddings", texts, expected, clients, infinity_body, http_client)
        )
    print_levels("all-MiniLM-L6-v2: llembed serve, then infinity-emb", [peer["llembed"], peer["infinity"]], in_batch)
    ratio = peer["llembed"]["req_per_s"] / peer["infinity"]["req_per_s"]
    print(f"llembed / infinity-emb at {clients} clients: {ratio:.2f}×")
    return peer


if __name__ == "__main__":
    main()
