"""Where an encode's time goes: torch.profiler over llembed encoding real sentences on the default model.

    python benchmarks/profile_encode.py [--dtype auto] [--texts 256] [--batch-size 32] [--rows 25]

Prints the operators by self CPU time (matrix products, attention, norms, casts, …) and the share of the wall
time spent inside the model's forward at all (the rest is tokenising, batching and pooling in Python).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_encode import mixed_length_texts, real_sentences  # noqa: E402  (same folder)
from torch.profiler import ProfilerActivity, profile

from llembed import Embedder
from llembed.backbone import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--mixed", action="store_true", help="texts of 5–60 words instead of sentences")
    args = parser.parse_args()
    embedder = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype=args.dtype)
    texts = mixed_length_texts(args.texts) if args.mixed else real_sentences(args.texts)
    embedder.encode(texts[:32], batch_size=args.batch_size, show_progress_bar=False)  # warm-up
    forward = 0.0
    model = embedder.backbone.base
    original = model.forward

    def timed(*a, **k):
        nonlocal forward
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            forward += time.perf_counter() - start

    model.forward = timed
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        embedder.encode(texts, batch_size=args.batch_size, show_progress_bar=False)
    wall = time.perf_counter() - start
    print(
        f"{cpu_name()}, dtype {embedder.backbone.dtype_name}, {len(texts)} texts: {wall:.2f} s under the profiler, "
        f"{100 * forward / wall:.0f}% inside the model's forward"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
