"""Does the model run slower depending on which thread runs it? (It does here; the server's batcher thread is
not the one that loaded the model.)

    python benchmarks/probe_thread_penalty.py [--texts 640] [--chunk 16]

Prints, on this CPU: elementwise (silu · x) and bf16 linear times in the main thread and in a worker thread, and
``Embedder.pool`` on chunks of ``--chunk`` STS-B sentences (what a server batch holds) in each, and through
``DynamicBatcher``. libgomp keeps one thread team per master thread. With two masters on a 2-core machine, one of
them ran elementwise ops 2–3.5× slower here, and which one depended on what had run before. An unexplained
finding for issue 16, kept as a probe.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_has_native_bf16, cpu_name  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.serving.batcher import DynamicBatcher  # noqa: E402


def elementwise_ms(repeats: int = 300) -> float:
    x = torch.randn(320, 1536)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.silu(x) * x
    return (time.perf_counter() - started) * 1000 / repeats


def linear_ms(repeats: int = 300) -> float:
    x, w = torch.randn(320, 576, dtype=torch.bfloat16), torch.randn(1536, 576, dtype=torch.bfloat16)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return (time.perf_counter() - started) * 1000 / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=640)
    parser.add_argument("--chunk", type=int, default=16)
    args = parser.parse_args()
    print(f"cpu: {cpu_name()}, native bf16: {cpu_has_native_bf16()}, torch threads: {torch.get_num_threads()}")
    with ThreadPoolExecutor(1) as worker:
        for name, probe in [("silu(x)·x fp32", elementwise_ms), ("linear bf16", linear_ms)]:
            first, second = probe(), worker.submit(probe).result()
            print(f"{name:<16} main thread {first:.3f} ms, worker thread {second:.3f} ms ({second / first:.2f}×)")

        rows = load_bundled("stsbenchmark").rows
        texts = [t for r in rows for t in (r["sentence1"], r["sentence2"])][: args.texts]
        embedder = Embedder.from_pretrained(None)
        specs = embedder.specs()

        def pool_rate() -> float:
            started = time.perf_counter()
            for i in range(0, len(texts), args.chunk):
                embedder.pool(texts[i : i + args.chunk], specs, side="text", show_progress_bar=False)
            return len(texts) / (time.perf_counter() - started)

        pool_rate()  # warm up
        print(f"pool, chunks of {args.chunk}: main thread {pool_rate():.1f} texts/s, "
              f"worker thread {worker.submit(pool_rate).result():.1f} texts/s")  # fmt: skip
    batcher = DynamicBatcher(embedder)
    counts = [len(embedder.tokenizer(t)["input_ids"]) for t in texts]
    started = time.perf_counter()
    for i in range(0, len(texts), args.chunk):
        chunk = zip(texts[i : i + args.chunk], counts[i : i + args.chunk], strict=True)
        wait([batcher.submit([text], "text", None, count) for text, count in chunk])
    rate = len(texts) / (time.perf_counter() - started)
    print(f"DynamicBatcher, {args.chunk} requests in flight: {rate:.1f} texts/s")
    batcher.close()


if __name__ == "__main__":
    main()
