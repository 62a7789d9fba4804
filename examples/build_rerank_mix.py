"""Split the licence-clean retrieval data (examples/data/retrieval) into a reranker's training files and a
held-aside calibration file (issue 28).

    .venv/bin/python examples/build_rerank_mix.py [--aside 0.1] [--out examples/data/rerank]

Every query of ``faq``, ``docs``, ``gecko`` and ``wordnet`` keeps its positive, hard negatives (the source's
own and BM25-mined) and MiniLM teacher scores; a training query needs ``--negatives`` of them (3: the
listwise loss ranks the same number of candidates for every query). A fixed share of the queries of each task,
chosen by a hash of the query text (stable when the sources grow), goes to ``calibration.jsonl.gz`` instead of
training: the reranker is trained without them, and its Platt scaling (``llembed.rerank_calibration``) is fitted
on them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from llembed.training.data import load_examples, write_examples

ROOT = Path(__file__).resolve().parent
TASKS = ("faq", "docs", "gecko", "wordnet")


def aside(query: str, share: float) -> bool:
    """Whether ``query`` is held aside: its hash, not its position, decides."""
    digest = hashlib.sha256(query.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT / "data" / "retrieval")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "rerank")
    parser.add_argument("--aside", type=float, default=0.1, help="share of each task's queries held aside")
    parser.add_argument(
        "--negatives", type=int, default=3, help="negatives a training query needs (listwise: all alike)"
    )
    args = parser.parse_args()
    if not 0 < args.aside < 1:
        raise SystemExit(f"--aside must be between 0 and 1, not {args.aside}")
    args.out.mkdir(parents=True, exist_ok=True)
    held, counts = [], {}
    for task in TASKS:
        source = args.source / f"{task}.jsonl.gz"
        if not source.is_file():
            raise SystemExit(f"{source} is missing: run examples/build_retrieval_mix.py first")
        examples = [e for e in load_examples(source) if e.negatives]
        # a listwise step scores each query against the same number of candidates: fewer negatives can't train
        train = [e for e in examples if not aside(e.query, args.aside) and len(e.negatives) >= args.negatives]
        held += [e for e in examples if aside(e.query, args.aside)]
        write_examples(args.out / f"{task}.jsonl.gz", train)
        aside_count = sum(aside(e.query, args.aside) for e in examples)
        counts[task] = {"train": len(train), "calibration": aside_count}
        print(f"{task}: {len(train)} to train, {aside_count} held aside", flush=True)
    write_examples(args.out / "calibration.jsonl.gz", held)
    (args.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
