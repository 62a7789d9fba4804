"""Encoding speed: llembed vs plain transformers vs sentence-transformers, same process, same real texts.

    python benchmarks/bench_encode.py [--texts 2000] [--icl-texts 300] [--compile] [--isa-cap AVX2]
                                      [--json benchmarks/results/bench_encode.json]

Prints tokens/s and texts/s of each system with ratios, the machine's measured fp32/bf16 matmul peak and
llembed's share of it, cosine of llembed's vectors to the fp32 reference, and peak RSS; then llembed's int8 path
(``dtype="int8"``); then length mixes (short sentences, mixed 5–60 words, long abstracts cut at 512 tokens)
against sentence-transformers at the CPU's best dtype; then a scenario with a ~200-token in-context-learning
prefix. Texts: unique STS Benchmark train sentences and SciFact abstracts (bundled, real). All systems use
last-token pooling on SmolLM2-135M-Instruct (the default model). llama.cpp (``llama-cpp-python`` on the same
GGUF) joins as a peer when it is importable; it is never a dependency (it compiles from source).
``--isa-cap AVX2`` runs everything with oneDNN, MKL and ATen capped at AVX2 (``ONEDNN_MAX_CPU_ISA`` and kin): the
kernels a CPU without AVX-512, VNNI, bf16 or AMX gets, on whatever CPU runs the benchmark. ``AVX512_CORE_VNNI``
stands for a CPU with AVX-512 and VNNI but no bf16 (Cascade Lake, Ice Lake); ``AVX512_CORE`` for one without
VNNI either (Skylake).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from llembed import Embedder
from llembed.allocator import keep_freed_memory
from llembed.backbone import cpu_has_native_bf16, cpu_name
from llembed.evaluation.bundled import DATA_DIR
from llembed.evaluation.measure import measure
from llembed.model_sources import dequantized_gguf, locate

ISA_CAPS = {"AVX2": ("AVX2", "avx2"), "AVX512_CORE": ("AVX512", "avx512"), "AVX512_CORE_VNNI": ("AVX512", "avx512")}
"""``--isa-cap``: oneDNN's cap → (MKL's, ATen's)."""


def real_sentences(count: int, min_words: int = 5, max_words: int = 60) -> list[str]:
    rows = [json.loads(line) for line in (DATA_DIR / "stsbenchmark" / "train.jsonl").open(encoding="utf-8")]
    texts = dict.fromkeys(t for r in rows for t in (r["sentence1"], r["sentence2"]))
    texts = [t for t in texts if min_words <= len(t.split()) <= max_words]
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} sentences available")
    return texts[:count]


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Measured GFLOP/s of a square matmul (one tile is enough to tell native bf16 from emulated)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    repeats = repeats if dtype == torch.float32 or cpu_has_native_bf16() else 1
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run(name: str, encode, texts: list[str], tokens: int) -> dict:
    encode(texts[:8])  # warm-up
    with measure() as cost:
        vectors = np.asarray(encode(texts), dtype=np.float32)
    result = {
        "system": name,
        "seconds": cost.seconds,
        "tokens": tokens,
        "tokens_per_s": tokens / cost.seconds,
        "texts_per_s": len(texts) / cost.seconds,
        "peak_rss_mb": cost.peak_rss_mb,
    }
    print(
        f"  {name:<34} {result['tokens_per_s']:8.0f} tok/s {result['texts_per_s']:7.1f} texts/s "
        f"{cost.seconds:7.1f} s  peak RSS {cost.peak_rss_mb:6.0f} MB",
        flush=True,
    )
    return result | {"vectors": normalize(vectors)}


def transformers_encoder(model_dir: Path, batch_size: int):
    """What a user writes with plain transformers: input order, padded batches, last real token."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()

    @torch.inference_mode()
    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            last = batch["attention_mask"].sum(dim=1) - 1  # right padding
            out.append(hidden[torch.arange(len(last)), last].float().numpy())
        return np.concatenate(out)

    return encode


def sentence_transformers_encoder(model_dir: Path, dtype: torch.dtype, batch_size: int, max_length: int | None = None):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(
        str(model_dir),
        model_kwargs={"dtype": dtype},
        # plain text: ST 6 would otherwise wrap each text in the instruct model's chat template
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    if max_length is not None:
        model.max_seq_length = max_length
    return lambda texts: model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)


def mixed_length_texts(count: int, seed: int = 0, low: int = 5, high: int = 60) -> list[str]:
    """Real running text cut to a random length of ``low``–``high`` words each (STS-B train sentences, joined):
    more padding per batch than sentences of similar length."""
    import random

    rng = random.Random(seed)
    words = " ".join(real_sentences(3000, min_words=1)).split()
    texts, position = [], 0
    for _ in range(count):
        length = rng.randint(low, high)
        if position + length > len(words):
            position = 0
        texts.append(" ".join(words[position : position + length]))
        position += length
    return texts


def long_texts(count: int, min_words: int = 150) -> list[str]:
    """SciFact abstracts of at least ``min_words`` words (bundled, real): documents, not sentences."""
    rows = (json.loads(line) for line in (DATA_DIR / "scifact" / "corpus.jsonl").open(encoding="utf-8"))
    texts = [f"{r.get('title', '')}. {r['text']}".strip() for r in rows if len(r["text"].split()) >= min_words]
    return texts[:count]


def length_mix_scenario(model_dir: Path, best_dtype: str, batch_size: int, sizes: dict[str, int]) -> dict:
    """llembed (its best dtype, and int8) against sentence-transformers at the same dtype, per length mix,
    texts cut at 512 tokens by every system."""
    peer_dtype = torch.bfloat16 if best_dtype == "bfloat16" else torch.float32
    ours = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype=best_dtype, max_length=512,
                                    truncation=True)  # fmt: skip
    int8 = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype="int8", max_length=512,
                                    truncation=True)  # fmt: skip
    st = sentence_transformers_encoder(model_dir, peer_dtype, batch_size, max_length=512)
    mixes = {
        "short sentences": real_sentences(sizes["short"]),
        "mixed 5-60 words": mixed_length_texts(sizes["mixed"]),
        "long abstracts (cut at 512 tokens)": long_texts(sizes["long"]),
    }
    report = {}
    for name, texts in mixes.items():
        ids = ours.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=512)["input_ids"]
        tokens = sum(map(len, ids))
        longest = max(map(len, ids))
        print(f"\n{name}: {len(texts)} texts, {tokens} tokens (mean {tokens / len(texts):.0f}, max {longest}):")
        peer_name = f"sentence-transformers {'bf16' if peer_dtype == torch.bfloat16 else 'fp32'}"
        rows = [
            run(f"llembed {best_dtype}", lambda t: ours.encode(t, batch_size=batch_size, show_progress_bar=False),
                texts, tokens),
            run("llembed int8", lambda t: int8.encode(t, batch_size=batch_size, show_progress_bar=False),
                texts, tokens),
            run(peer_name, st, texts, tokens),
        ]  # fmt: skip
        reference = rows[2]["vectors"]
        for row in rows:
            row["cosine_to_peer_min"] = float((row.pop("vectors") * reference).sum(axis=1).min())
        peer = rows[2]["tokens_per_s"]
        print(
            f"  llembed {best_dtype} / {peer_name} {rows[0]['tokens_per_s'] / peer:.2f}×, "
            f"llembed int8 / {peer_name} {rows[1]['tokens_per_s'] / peer:.2f}×; min cosine to the peer: "
            + ", ".join(f"{r['system']} {r['cosine_to_peer_min']:.4f}" for r in rows[:2])
        )
        report[name] = {"texts": len(texts), "tokens": tokens, "results": rows}
    return report


def llama_cpp_encoder(gguf: Path, batch_size: int):
    """llama.cpp through llama-cpp-python on the same GGUF, last-token pooling (None when not installed)."""
    try:
        from llama_cpp import LLAMA_POOLING_TYPE_LAST, Llama
    except ImportError:
        return None
    model = Llama(str(gguf), embedding=True, pooling_type=LLAMA_POOLING_TYPE_LAST, n_ctx=512,
                  n_threads=torch.get_num_threads(), n_batch=512, verbose=False)  # fmt: skip
    return lambda texts: np.asarray([model.embed(t) for t in texts], dtype=np.float32)


def icl_demonstrations(count: int = 12) -> list[list[str]]:
    """Demonstrations from real STS-B dev sentences; the 'one word' is the sentence's longest word."""
    rows = [json.loads(line) for line in (DATA_DIR / "stsbenchmark" / "dev.jsonl").open(encoding="utf-8")]
    demos = []
    for row in rows[:count]:
        words = [w.strip(".,!?\"'") for w in row["sentence1"].split()]
        demos.append([row["sentence1"], max(words, key=len).capitalize()])
    return demos


def stream_memory(count: int, batch_size: int) -> dict:
    """Peak RSS while ``encode_stream`` embeds ``count`` texts (real sentences, cycled) into a discarded sink,
    against the RSS of the loaded model alone."""
    import itertools

    from llembed.evaluation.measure import _rss_mb

    embedder = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype="auto")
    embedder.encode(real_sentences(8))
    model_rss = _rss_mb()
    sentences = real_sentences(2000)
    stream = (f"{text} ({i})" for i, text in enumerate(itertools.islice(itertools.cycle(sentences), count)))
    done = 0
    with measure() as cost:
        for chunk in embedder.encode_stream(stream, batch_size=batch_size, show_progress_bar=False):
            done += len(chunk)
    result = {
        "texts": done,
        "seconds": cost.seconds,
        "model_rss_mb": model_rss,
        "peak_rss_mb": cost.peak_rss_mb,
        "above_model_mb": cost.peak_rss_mb - model_rss,
    }
    print(
        f"streamed {done} texts in {cost.seconds:.0f} s: peak RSS {cost.peak_rss_mb:.0f} MB, "
        f"{result['above_model_mb']:.0f} MB above the loaded model's {model_rss:.0f} MB"
    )
    return result


def compiled_scenario(llembed: Embedder, texts: list[str], tokens: int, batch_size: int, eager: dict) -> dict:
    """llembed with ``torch.compile``: its one-off compile time, its speed after, and where it breaks even."""
    import dataclasses

    backbone = dataclasses.replace(llembed.backbone, compiled=None)
    backbone.compile()
    compiled = Embedder(backbone, llembed.recipe)
    start = time.perf_counter()
    compiled.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    compile_seconds = time.perf_counter() - start
    print(f"  (torch.compile: first batch took {compile_seconds:.0f} s, compiling)")
    result = run(
        "llembed + torch.compile",
        lambda t: compiled.encode(t, batch_size=batch_size, show_progress_bar=False),
        texts,
        tokens,
    )
    saved_per_text = 1 / eager["texts_per_s"] - 1 / result["texts_per_s"]
    break_even = compile_seconds / saved_per_text if saved_per_text > 0 else float("inf")
    print(f"  torch.compile pays off after about {break_even:,.0f} texts of this length")
    return {"result": result, "compile_seconds": compile_seconds, "break_even_texts": break_even}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--icl-texts", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_encode.json")
    parser.add_argument("--compile", action="store_true", help="also measure llembed under torch.compile")
    parser.add_argument("--stream-texts", type=int, default=0, help="only measure streaming memory over N texts")
    parser.add_argument("--mixed-texts", type=int, default=600, help="length mixes: texts of 5–60 words")
    parser.add_argument("--long-texts", type=int, default=150, help="length mixes: SciFact abstracts")
    parser.add_argument("--no-length-mixes", action="store_true", help="skip the length-mix scenario")
    parser.add_argument(
        "--isa-cap",
        choices=sorted(ISA_CAPS),
        help="cap oneDNN, MKL and ATen at this instruction set: the kernels of an older CPU, on this one",
    )
    args = parser.parse_args()
    if args.isa_cap and os.environ.get("ONEDNN_MAX_CPU_ISA") != args.isa_cap:
        # the caps are read when the libraries start: run this script again under them
        mkl, aten = ISA_CAPS[args.isa_cap]
        caps = {"ONEDNN_MAX_CPU_ISA": args.isa_cap, "MKL_ENABLE_INSTRUCTIONS": mkl, "ATEN_CPU_CAPABILITY": aten}
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **caps})
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if args.stream_texts:
        result = stream_memory(args.stream_texts, args.batch_size)
        path = args.json.with_name("bench_stream_memory.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
        return

    texts = real_sentences(args.texts)
    model_dir = dequantized_gguf(locate(None))
    native_bf16 = cpu_has_native_bf16()
    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    print(
        f"machine: {platform.machine()}, {cpu_name()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, "
        f"native bf16: {native_bf16}" + (f" (capped at {isa_cap} by ONEDNN_MAX_CPU_ISA)" if isa_cap else "")
    )
    print(f"matmul peak: fp32 {peaks['float32']:.0f} GFLOP/s, bf16 {peaks['bfloat16']:.1f} GFLOP/s")
    kept = keep_freed_memory()  # what loading llembed does; process-wide, so the peers below run with it too
    print(f"allocator: freed memory {'kept (llembed.allocator), for every system here' if kept else 'as glibc does'}")

    llembed = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype="auto", normalize=False)
    llembed_dtype = str(llembed.backbone.dtype).replace("torch.", "")
    tokens = sum(len(t) for t in llembed.tokenizer(texts, add_special_tokens=True)["input_ids"])
    params = sum(p.numel() for p in llembed.backbone.base.parameters())
    flops_per_token = 2 * (params - llembed.backbone.base.get_input_embeddings().weight.numel())
    print(
        f"\n{len(texts)} real sentences, {tokens} tokens, batch size {args.batch_size}; "
        f"{flops_per_token / 1e9:.3f} GFLOP per token outside the embedding table"
    )

    print("\nplain texts, last-token pooling:")
    results = [
        run(
            f"llembed (auto → {llembed_dtype})",
            lambda t: llembed.encode(t, batch_size=args.batch_size, show_progress_bar=False),
            texts,
            tokens,
        )
    ]
    results.append(run("transformers fp32", transformers_encoder(model_dir, args.batch_size), texts, tokens))
    results.append(
        run(
            "sentence-transformers fp32",
            sentence_transformers_encoder(model_dir, torch.float32, args.batch_size),
            texts,
            tokens,
        )
    )
    if native_bf16:
        results.append(
            run(
                "sentence-transformers bf16",
                sentence_transformers_encoder(model_dir, torch.bfloat16, args.batch_size),
                texts,
                tokens,
            )
        )
    else:
        print(
            "  sentence-transformers bf16         skipped: this CPU has no native bf16 (emulated bf16 matmul "
            f"runs at {peaks['bfloat16']:.1f} GFLOP/s)"
        )
    int8 = Embedder.from_pretrained(None, prompt="none", pooling="last", dtype="int8", normalize=False)
    results.append(
        run(
            "llembed int8", lambda t: int8.encode(t, batch_size=args.batch_size, show_progress_bar=False), texts, tokens
        )  # fmt: skip
    )
    source = locate(None)
    llama_cpp = llama_cpp_encoder(source.path / source.gguf_file, args.batch_size)
    if llama_cpp is not None:
        results.append(run("llama.cpp (same GGUF, last token)", llama_cpp, texts, tokens))
    else:
        print("  llama.cpp                          skipped: llama-cpp-python is not installed")
    compiled_report = None
    if args.compile:
        compiled_report = compiled_scenario(llembed, texts, tokens, args.batch_size, results[0])
        results.append(compiled_report.pop("result"))
    reference = results[1]["vectors"]
    for result in results:
        result["cosine_to_fp32_min"] = float((result.pop("vectors") * reference).sum(axis=1).min())
    base = {r["system"]: r["tokens_per_s"] for r in results}
    ours = results[0]["tokens_per_s"]
    peak = peaks["bfloat16" if llembed_dtype == "bfloat16" else "float32"]
    roofline = peak * 1e9 / flops_per_token
    print(f"\n  llembed / transformers fp32          {ours / base['transformers fp32']:.2f}×")
    int8_ratio = base["llembed int8"] / base["sentence-transformers fp32"]
    print(f"  llembed int8 / sentence-transformers fp32 {int8_ratio:.2f}×")
    print(f"  llembed / sentence-transformers fp32 {ours / base['sentence-transformers fp32']:.2f}×")
    if "sentence-transformers bf16" in base:
        print(f"  llembed / sentence-transformers bf16 {ours / base['sentence-transformers bf16']:.2f}×")
    if "llembed + torch.compile" in base:
        fast = base["llembed + torch.compile"]
        print(
            f"  llembed + torch.compile / sentence-transformers fp32 {fast / base['sentence-transformers fp32']:.2f}×"
        )
        print(f"  llembed + torch.compile / llembed eager {fast / ours:.2f}×")
    print(
        f"  roofline ({llembed_dtype}, measured matmul peak): {roofline:.0f} tok/s; llembed reaches "
        f"{100 * ours / roofline:.0f}%"
    )
    print(
        "  cosine to the fp32 reference (min over texts): "
        + ", ".join(f"{r['system']} {r['cosine_to_fp32_min']:.5f}" for r in results)
    )

    mixes = None
    if not args.no_length_mixes:
        sizes = {"short": min(args.texts, 1000), "mixed": args.mixed_texts, "long": args.long_texts}
        mixes = length_mix_scenario(model_dir, llembed_dtype, args.batch_size, sizes)

    demos = icl_demonstrations()
    icl = Embedder(llembed.backbone, llembed.recipe.replace(prompt="icl", icl_examples=demos))
    template = icl.strategy.query_templates[0]
    prompted = [template.render(t).string for t in texts[: args.icl_texts]]
    icl_tokens = sum(len(t) for t in llembed.tokenizer(prompted, add_special_tokens=True)["input_ids"])
    prefix = len(icl.prompt_tokenizer.prefix_ids(template))
    print(
        f"\nICL prompt ({len(demos)} demonstrations, {prefix}-token shared prefix), {len(prompted)} texts, "
        f"{icl_tokens} prompted tokens:"
    )
    icl_results = [
        run(
            "llembed icl (prefix KV cache)",
            lambda t: icl.encode(t, batch_size=args.batch_size, show_progress_bar=False),
            texts[: args.icl_texts],
            icl_tokens,
        )
    ]
    peer_dtype = torch.bfloat16 if native_bf16 else torch.float32
    peer_name = f"sentence-transformers {'bf16' if native_bf16 else 'fp32'}, same prompt"
    st = sentence_transformers_encoder(model_dir, peer_dtype, args.batch_size)
    icl_results.append(
        run(peer_name, lambda t: st([template.render(x).string for x in t]), texts[: args.icl_texts], icl_tokens)
    )
    cosine = float((icl_results[0].pop("vectors") * icl_results[1].pop("vectors")).sum(axis=1).min())
    speedup = icl_results[0]["tokens_per_s"] / icl_results[1]["tokens_per_s"]
    print(f"\n  llembed / {peer_name}: {speedup:.2f}×; cosine between them (min) {cosine:.5f}")

    report = {
        "machine": {
            "arch": platform.machine(),
            "cpu": cpu_name(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "native_bf16": native_bf16,
            "isa_cap": isa_cap,
            "freed_memory_kept": kept,
            "matmul_gflops": peaks,
        },
        "texts": len(texts),
        "tokens": tokens,
        "flops_per_token": flops_per_token,
        "plain": results,
        "torch_compile": compiled_report,
        "length_mixes": mixes,
        "roofline_tokens_per_s": roofline,
        "llembed_roofline_share": ours / roofline,
        "icl": {
            "demonstrations": len(demos),
            "prefix_tokens": prefix,
            "results": icl_results,
            "speedup": speedup,
            "cosine_min": cosine,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
