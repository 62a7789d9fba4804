"""Reranking speed: llembed's Reranker (query head cached) vs the same without the cache, vs plain transformers
(the whole prompt per pair, as a user writes it) and vs sentence-transformers' CrossEncoder on the same model
folder, one process, the same real (query, document) pairs; plus the early exit at two thirds of the depth and
the ``likelihood`` prompt (``smollm2-135m-ql-reranker``'s scoring: the document first, so nothing is cached).

    python benchmarks/bench_rerank.py [--queries 8] [--documents 30] [--json benchmarks/results/bench_rerank.json]

Pairs: SciFact queries (bundled), each with its BM25 top documents (real abstracts, cut to 256 tokens). Model:
SmolLM2-135M-Instruct (the default), in the dtype ``auto`` picks. The CrossEncoder loads the causal LM as a
sequence classifier with a new, untrained score head: its scores mean nothing, its cost is the peer's cost; it
reads the bare (query, document) pair, without the instruction and chat template, so its tokens/s is the fairer
ratio and its pairs/s flatters it.
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
import torch

from llembed import Reranker
from llembed.backbone import cpu_has_native_bf16, cpu_name
from llembed.evaluation.bundled import load_bundled
from llembed.model_sources import dequantized_gguf, locate
from llembed.rerank_prompts import render

DOCUMENT_TOKENS = 256


def pairs(queries: int, documents: int, tokenizer) -> list[tuple[str, list[str]]]:
    import bm25s

    scifact = load_bundled("scifact")
    ids = list(scifact.corpus)
    texts = [scifact.corpus[i] for i in ids]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
    chosen = list(scifact.queries.items())[:queries]
    found, _ = retriever.retrieve(bm25s.tokenize([q for _, q in chosen], show_progress=False), k=documents,
                                  show_progress=False)  # fmt: skip
    out = []
    for (_, query), row in zip(chosen, found, strict=True):
        docs = [tokenizer.decode(tokenizer(texts[i], add_special_tokens=False)["input_ids"][:DOCUMENT_TOKENS])
                for i in row]  # fmt: skip
        out.append((query, docs))
    return out


def timed(name: str, score, work, tokens: int) -> dict:
    score(work[:1])  # warm-up
    started = time.perf_counter()
    scores = score(work)
    seconds = time.perf_counter() - started
    count = sum(len(docs) for _, docs in work)
    result = {"system": name, "seconds": seconds, "pairs_per_s": count / seconds, "tokens_per_s": tokens / seconds}
    print(f"  {name:<46} {result['pairs_per_s']:7.1f} pairs/s {result['tokens_per_s']:8.0f} tok/s {seconds:7.1f} s",
          flush=True)  # fmt: skip
    return result | {"scores": np.concatenate([np.asarray(s, dtype=np.float64) for s in scores])}


def llembed_scorer(reranker: Reranker, batch_size: int):
    return lambda work: [reranker.score(q, docs, batch_size=batch_size) for q, docs in work]


def transformers_scorer(reranker: Reranker, batch_size: int):
    """Plain transformers: each pair's whole prompt through the causal LM, logits of the two answers at the end."""
    model, tokenizer = reranker.backbone.model, reranker.tokenizer
    yes, no = reranker.label_ids

    def score(work):
        out = []
        for query, docs in work:
            rendered = render(reranker.prompt, query, reranker.task, tokenizer, reranker._special_prefix)
            rows = [rendered.head_ids + tokenizer(d, add_special_tokens=False)["input_ids"] + rendered.tail_ids
                    for d in docs]  # fmt: skip
            scores = []
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                width = max(map(len, batch))
                ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in batch])  # left padding
                mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch])
                positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
                with torch.inference_mode():
                    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)
                logits = logits.logits[:, -1].float()
                scores += (logits[:, yes] - logits[:, no]).tolist()
            out.append(scores)
        return out

    return score


def cross_encoder_scorer(model_dir: Path, dtype: torch.dtype, batch_size: int):
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(model_dir), num_labels=1, model_kwargs={"dtype": dtype}, device="cpu")
    if model.tokenizer.pad_token is None:
        model.tokenizer.pad_token = model.tokenizer.eos_token
    model.model.config.pad_token_id = model.tokenizer.pad_token_id
    return lambda work: [model.predict([(q, d) for d in docs], batch_size=batch_size) for q, docs in work]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_rerank.json")
    args = parser.parse_args()

    reranker = Reranker.from_pretrained(None, truncation=True)
    dtype = reranker.backbone.dtype
    machine = f"{cpu_name()} ({platform.machine()}, {torch.get_num_threads()} threads"
    print(f"CPU: {machine}, native bf16: {cpu_has_native_bf16()}); model {reranker.recipe.model}, {dtype}, "
          f"prompt {reranker.prompt.name}")  # fmt: skip
    work = pairs(args.queries, args.documents, reranker.tokenizer)
    rendered = [
        render(reranker.prompt, q, reranker.task, reranker.tokenizer, reranker._special_prefix) for q, _ in work
    ]
    tokens = sum(
        len(r.head_ids) + len(r.tail_ids) + len(reranker.tokenizer(d, add_special_tokens=False)["input_ids"])
        for r, (_, docs) in zip(rendered, work, strict=True)
        for d in docs
    )
    head_share = sum(len(r.head_ids) * len(docs) for r, (_, docs) in zip(rendered, work, strict=True)) / tokens
    print(f"{len(work)} queries × {args.documents} documents, {tokens} prompt tokens ({head_share:.0%} of them the "
          "query head)")  # fmt: skip

    results = [timed("llembed Reranker (head cached)", llembed_scorer(reranker, args.batch_size), work, tokens)]
    uncached = Reranker(reranker.backbone, reranker.recipe)
    uncached.prefix_cache = False
    results.append(timed("llembed Reranker (no cache)", llembed_scorer(uncached, args.batch_size), work, tokens))
    results.append(timed("transformers (whole prompt per pair)", transformers_scorer(reranker, args.batch_size),
                         work, tokens))  # fmt: skip
    early = Reranker(reranker.backbone, reranker.recipe.replace(layer=round(reranker.backbone.num_layers * 2 / 3)))
    name = f"llembed Reranker, exit at layer {early.layer_ids[0]}"
    results.append(timed(name, llembed_scorer(early, args.batch_size), work, tokens))
    # the query-likelihood reranker (smollm2-135m-ql-reranker's scoring): the document first, nothing cached
    likelihood = Reranker(reranker.backbone, reranker.recipe.replace(rerank_prompt="likelihood"))
    likelihood_tokens = 0
    for query, docs in work:
        r = render(likelihood.prompt, query, likelihood.task, reranker.tokenizer, reranker._special_prefix)
        around = len(r.head_ids) + len(r.tail_ids) + len(r.query_ids)
        likelihood_tokens += sum(
            around + len(reranker.tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs
        )
    name = "llembed Reranker, likelihood prompt"
    results.append(timed(name, llembed_scorer(likelihood, args.batch_size), work, likelihood_tokens))
    try:
        model_dir = dequantized_gguf(locate(None))
        # its input is the bare pair (no instruction, no chat template): fewer tokens, counted as its own
        pair_tokens = sum(len(reranker.tokenizer(q, d)["input_ids"]) for q, docs in work for d in docs)
        scorer = cross_encoder_scorer(model_dir, dtype, args.batch_size)
        results.append(timed("sentence-transformers CrossEncoder (bare pairs)", scorer, work, pair_tokens))
    except Exception as exc:  # noqa: BLE001 - a peer that cannot load this model is reported, not fatal
        print(f"  sentence-transformers CrossEncoder: could not run ({exc})")

    base = results[0]
    print("\nratios (llembed cached ÷ other): pairs/s, tokens/s")
    for other in results[1:]:
        pairs_ratio = base["pairs_per_s"] / other["pairs_per_s"]
        print(f"  vs {other['system']:<46} {pairs_ratio:5.2f}×  {base['tokens_per_s'] / other['tokens_per_s']:5.2f}×")
    crossencoder = next((r for r in results if r["system"].startswith("sentence-transformers")), None)
    if crossencoder is not None:
        ratio = results[4]["pairs_per_s"] / crossencoder["pairs_per_s"]
        print(f"  likelihood prompt vs the CrossEncoder: {ratio:5.2f}× its pairs/s")
    reference = results[2]["scores"]
    agreement = {
        "cached vs transformers, max |Δscore|": float(np.abs(base["scores"] - reference).max()),
        "uncached vs transformers, max |Δscore|": float(np.abs(results[1]["scores"] - reference).max()),
        f"layer {early.layer_ids[0]} vs final, Spearman": _spearman(results[3]["scores"], base["scores"]),
    }
    for name, value in agreement.items():
        print(f"  {name}: {value:.4g}")
    payload = {
        "cpu": cpu_name(),
        "native_bf16": cpu_has_native_bf16(),
        "threads": torch.get_num_threads(),
        "dtype": str(dtype),
        "queries": len(work),
        "documents_per_query": args.documents,
        "prompt_tokens": tokens,
        "head_share": head_share,
        "results": [{k: v for k, v in r.items() if k != "scores"} for r in results],
        "agreement": agreement,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.json}")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    return float(np.corrcoef(rank(a), rank(b))[0, 1])


if __name__ == "__main__":
    main()
