"""What glibc's allocator costs: llembed and sentence-transformers on the same texts, each in a fresh process,
with freed memory kept (``llembed.allocator``, llembed's default) and as glibc leaves it.

    python benchmarks/probe_allocator.py [--texts 600] [--repeats 2]

``bench_encode.py`` runs every system in one process, so llembed's process-wide allocator setting speeds up the
peers there too; this probe separates them. Texts: the benchmark's mixed 5–60-word mix (real STS-B text).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKER = """
import json, sys, time
sys.path.insert(0, {here!r})
import torch
from bench_encode import mixed_length_texts, sentence_transformers_encoder
from llembed import Embedder
from llembed.allocator import keep_freed_memory
from llembed.model_sources import dequantized_gguf, locate
system, count, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
texts = mixed_length_texts(count)
if system == "llembed":
    embedder = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype="bfloat16")  # loads: sets it
    encode = lambda t: embedder.encode(t, batch_size=32, show_progress_bar=False)
else:
    keep_freed_memory()  # a no-op under LLEMBED_KEEP_FREED_MEMORY=0
    encode = sentence_transformers_encoder(dequantized_gguf(locate(None)), torch.bfloat16, 32, max_length=512)
encode(texts[:32])
best = float("inf")
for _ in range(repeats):
    start = time.perf_counter()
    encode(texts)
    best = min(best, time.perf_counter() - start)
print(json.dumps({{"texts_per_s": len(texts) / best, "kept": keep_freed_memory()}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from llembed.backbone import cpu_name

    print(
        f"{cpu_name()}, {os.cpu_count()} cpus; {args.texts} texts of 5–60 words, bf16, batch 32, best of {args.repeats}"
    )
    code = WORKER.format(here=str(Path(__file__).parent))
    rates = {}
    for system in ("llembed", "sentence-transformers"):
        for setting in ("0", "1"):
            env = {**os.environ, "LLEMBED_KEEP_FREED_MEMORY": setting}
            run = subprocess.run([sys.executable, "-c", code, system, str(args.texts), str(args.repeats)],
                                 env=env, capture_output=True, text=True, check=True)  # fmt: skip
            result = json.loads(run.stdout.strip().splitlines()[-1])
            rates[system, setting] = result["texts_per_s"]
            label = "freed memory kept" if result["kept"] else "glibc as it is"
            print(f"  {system:<22} {label:<18} {result['texts_per_s']:6.1f} texts/s", flush=True)
    for system in ("llembed", "sentence-transformers"):
        print(f"  {system}: kept / glibc {rates[system, '1'] / rates[system, '0']:.2f}×")
    as_shipped = rates["llembed", "1"] / rates["sentence-transformers", "0"]
    print(f"  llembed as shipped / sentence-transformers as shipped: {as_shipped:.2f}×")


if __name__ == "__main__":
    main()
