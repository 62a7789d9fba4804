"""llembed's CPU backends against the fast paths a sentence-transformers user picks, same model, same texts.

    bash benchmarks/setup_peers.sh        # once: sentence-transformers' ONNX/OpenVINO exporters in .venv-peers
    python benchmarks/bench_backends.py [--mixed-texts 600] [--long-texts 100] [--json ...] [--markdown ...]

Model: SmolLM2-135M-Instruct (the default), plain text, mean pooling, unit vectors, texts cut at 512 tokens —
what sentence-transformers can express for a causal LM (its prompts only prepend, so PromptEOL-style suffixes are
out). Systems, each on every length mix:

- llembed: torch fp32 (the reference), torch at the CPU's best dtype, torch int8, OpenVINO at its default
  precision, OpenVINO int8 (NNCF static, calibrated on the bundled calibration sentences), and what
  ``backend="auto"`` picks here;
- sentence-transformers in this process: torch fp32, and bf16 where the CPU has native bf16;
- sentence-transformers in ``.venv-peers`` (``peer_st_backends.py``: optimum needs transformers 4.x): ``onnx`` fp32,
  ``onnx`` int8 (``export_dynamic_quantized_onnx_model``), ``openvino`` at its default precision, ``openvino`` int8
  (``export_static_quantized_openvino_model``, calibrated on the same sentences);
- llama.cpp when ``llama-cpp-python`` is importable (it is never installed: it compiles from source).

Length mixes: the STS Benchmark test set's 2,552 unique sentences (their vectors also give each system's STS-B
Spearman, on the full test set), 5–60-word cuts of running text, SciFact abstracts of 150+ words. Every system
runs the same texts in the same order with the same batch size, after one warm-up batch. Peers in the other
environment run in a subprocess on the same CPU, one after another, never beside a measured system.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from bench_encode import long_texts, mixed_length_texts  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.backbone import cpu_has_native_bf16, cpu_name  # noqa: E402
from llembed.evaluation.bundled import DATA_DIR  # noqa: E402
from llembed.model_sources import dequantized_gguf, locate  # noqa: E402
from llembed.quantization import calibration_texts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
MAX_LENGTH = 512
QUALITY_BAR = 0.5
"""Issue 30's bar: at most this many STS-B points below fp32."""


def sts_test() -> tuple[list[str], list[tuple[int, int]], np.ndarray]:
    """The STS-B test set's unique sentences, its pairs as indices into them, and its gold scores."""
    rows = [json.loads(line) for line in (DATA_DIR / "stsbenchmark" / "test.jsonl").open(encoding="utf-8")]
    sentences = list(dict.fromkeys(t for r in rows for t in (r["sentence1"], r["sentence2"])))
    index = {text: i for i, text in enumerate(sentences)}
    pairs = [(index[r["sentence1"]], index[r["sentence2"]]) for r in rows]
    return sentences, pairs, np.array([r["score"] for r in rows], dtype=np.float64)


def sts_spearman(vectors: np.ndarray, pairs, gold: np.ndarray) -> float:
    a, b = (np.stack([vectors[p[k]] for p in pairs]) for k in (0, 1))
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return 100 * float(spearmanr(cosine, gold).statistic)


def timed(encode, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    encode(texts[:batch_size])
    start = time.perf_counter()
    vectors = np.asarray(encode(texts), dtype=np.float32)
    return time.perf_counter() - start, vectors


def llembed_systems(batch_size: int) -> dict:
    """name → loader of an encode function (loaded one at a time: two models never share the two cores' cache)."""
    fields = {"prompt": "none", "pooling": "mean", "max_length": MAX_LENGTH, "truncation": True, "normalize": True}

    def loader(**extra):
        def load():
            embedder = Embedder.from_pretrained(None, **fields, **extra)
            load.dtype_name = embedder.backbone.dtype_name
            return lambda texts: embedder.encode(texts, batch_size=batch_size, show_progress_bar=False)

        return load

    best = "bfloat16" if cpu_has_native_bf16() else "float32"
    systems = {
        "llembed torch fp32": loader(dtype="float32"),
        "llembed torch int8": loader(dtype="int8"),
        "llembed openvino (default precision)": loader(backend="openvino"),
        "llembed openvino int8": loader(backend="openvino", dtype="int8"),
        "llembed backend=auto": loader(backend="auto"),
    }
    if best == "bfloat16":
        systems = {"llembed torch fp32": systems.pop("llembed torch fp32"), "llembed torch bf16": loader(), **systems}
    return systems


def st_torch(model_dir: Path, dtype: torch.dtype, batch_size: int):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(
        str(model_dir),
        model_kwargs={"dtype": dtype},
        modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
        module_output_name="token_embeddings",
    )
    if transformer.tokenizer.pad_token is None:
        transformer.tokenizer.pad_token = transformer.tokenizer.eos_token
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.max_seq_length = MAX_LENGTH
    return lambda texts: model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)


def run_peers(model_dir: Path, sets: dict[str, list[str]], batch_size: int, work: Path) -> dict:
    """sentence-transformers' ONNX/OpenVINO systems in .venv-peers; {} with a note when it is not set up."""
    if not PEERS_PYTHON.is_file():
        print("  sentence-transformers onnx/openvino: skipped, run `bash benchmarks/setup_peers.sh` first")
        return {}
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "model_dir": str(model_dir), "work": str(work), "pooling": "mean", "calibration": calibration_texts(),
        "sets": sets, "batch_size": batch_size, "threads": torch.get_num_threads(), "max_length": MAX_LENGTH,
    }  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="peers-", dir=work)) / "peers.json"
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    script = Path(__file__).with_name("peer_st_backends.py")
    done = subprocess.run([str(PEERS_PYTHON), str(script), str(work / "spec.json"), str(out)], text=True)
    if done.returncode != 0:
        raise SystemExit(f"the peers' run failed (exit {done.returncode})")
    report = json.loads(out.read_text(encoding="utf-8"))
    from peer_st_backends import slug

    results = {}
    for name, seconds in report["systems"].items():
        vectors = {s: np.load(out.parent / f"{slug(name)}-{slug(s)}.npy") for s in sets}
        results[name] = {"seconds": seconds, "vectors": vectors, "export_seconds": report["exports"].get(name)}
    return {"systems": results, "versions": report["versions"]}


def llama_cpp(batch_size: int):
    try:
        from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama
    except ImportError:
        return None
    source = locate(None)
    model = Llama(str(source.path / source.gguf_file), embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN,
                  n_ctx=MAX_LENGTH, n_threads=torch.get_num_threads(), n_batch=MAX_LENGTH, verbose=False)  # fmt: skip
    return lambda texts: np.asarray([model.embed(t, truncate=True) for t in texts], dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mixed-texts", type=int, default=600)
    parser.add_argument("--long-texts", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-peers", action="store_true", help="skip the .venv-peers systems")
    parser.add_argument(
        "--only",
        nargs="+",
        help="measure these llembed systems again (and the fp32 reference); other rows come "
        "from --json's last run, each marked with its date",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-backends")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_backends.json")
    parser.add_argument("--markdown", type=Path, default=Path(__file__).parent / "results" / "bench_backends.md")
    args = parser.parse_args()

    sentences, pairs, gold = sts_test()
    sets = {
        "STS-B test sentences": sentences,
        "mixed 5-60 words": mixed_length_texts(args.mixed_texts),
        "SciFact abstracts (cut at 512 tokens)": long_texts(args.long_texts),
    }
    model_dir = dequantized_gguf(locate(None))
    machine = {"cpu": cpu_name(), "arch": platform.machine(), "cpus": os.cpu_count(),
               "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16()}  # fmt: skip
    print(f"machine: {machine}")
    sizes = ", ".join(f"{name} ({len(texts)})" for name, texts in sets.items())
    print(f"SmolLM2-135M-Instruct, plain text, mean pooling; sets: {sizes}")

    results: dict[str, dict] = {}

    def measure(name: str, encode) -> None:
        seconds, vectors = {}, {}
        for set_name, texts in sets.items():
            seconds[set_name], vectors[set_name] = timed(encode, texts, args.batch_size)
        results[name] = {"seconds": seconds, "vectors": vectors}
        print(f"  {name}: " + ", ".join(f"{len(sets[k]) / v:.1f}/s" for k, v in seconds.items()), flush=True)

    only = set(args.only or ())
    for name, load in llembed_systems(args.batch_size).items():
        if only and name not in only | {"llembed torch fp32"}:
            continue
        encode = load()
        if name == "llembed backend=auto":
            name = f"llembed backend=auto (→ {load.dtype_name})"
        measure(name, encode)
        del encode
    if not only:
        measure("st torch fp32", st_torch(model_dir, torch.float32, args.batch_size))
        if cpu_has_native_bf16():
            measure("st torch bf16", st_torch(model_dir, torch.bfloat16, args.batch_size))
    peers = {} if args.no_peers or only else run_peers(model_dir, sets, args.batch_size, args.work)
    for name, row in peers.get("systems", {}).items():
        results[name] = row
    cpp = None if only else llama_cpp(args.batch_size)
    if cpp is not None:
        measure("llama.cpp (same GGUF, mean)", cpp)
    elif not only:
        print("  llama.cpp: skipped, llama-cpp-python is not installed (it compiles from source)")

    reference = results["llembed torch fp32"]
    reference_sts = sts_spearman(reference["vectors"]["STS-B test sentences"], pairs, gold)
    rows = []
    for name, row in results.items():
        short = row["vectors"]["STS-B test sentences"]
        cosine = min(
            float((normalize(row["vectors"][s]) * normalize(reference["vectors"][s])).sum(1).min()) for s in sets
        )
        sts = sts_spearman(short, pairs, gold)
        rows.append({
            "system": name,
            "texts_per_s": {s: len(sets[s]) / row["seconds"][s] for s in sets},
            "sts_b_spearman": sts,
            "sts_b_delta": sts - reference_sts,
            "min_cosine_to_fp32": cosine,
            "export_seconds": row.get("export_seconds"),
            "measured": time.strftime("%Y-%m-%d %H:%M"),
        })  # fmt: skip
    if only and args.json.is_file():  # keep the last run's other rows, in their order
        fresh = {row["system"]: row for row in rows}
        last_run = json.loads(args.json.read_text(encoding="utf-8"))
        previous = last_run["rows"]
        peers = {"versions": last_run.get("peer_versions")}
        kept = [fresh.pop(row["system"], row) for row in previous if not row["system"].startswith("llembed backend")]
        rows = kept + list(fresh.values())
    table = markdown(rows, sets, machine, peers.get("versions"))
    print("\n" + table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "sets": {k: len(v) for k, v in sets.items()}, "rows": rows,
               "peer_versions": peers.get("versions")}  # fmt: skip
    args.json.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    args.markdown.write_text(table + "\n", encoding="utf-8")
    print(f"wrote {args.json} and {args.markdown}")


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def markdown(rows: list[dict], sets: dict, machine: dict, versions: dict | None) -> str:
    names = list(sets)
    fastest = {s: max(r["texts_per_s"][s] for r in rows if not r["system"].startswith("llembed")) for s in names}
    lines = [
        f"CPU: {machine['cpu']} ({machine['threads']} threads, native bf16: {machine['native_bf16']}); "
        f"SmolLM2-135M-Instruct, plain text, mean pooling, batch 32, texts cut at 512 tokens. "
        f"Model not trained on anything here (the base instruct model). Peers: sentence-transformers "
        f"{(versions or {}).get('sentence-transformers', '—')} in .venv-peers. Ratios: against the fastest peer on "
        "that mix.",
        "",
        "| system | "
        + " | ".join(f"{s} texts/s (× fastest peer)" for s in names)
        + " | STS-B test Spearman | Δ vs llembed fp32 | min cosine to fp32 |",
        "|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for row in rows:
        speed = " | ".join(f"{row['texts_per_s'][s]:.1f} ({row['texts_per_s'][s] / fastest[s]:.2f}×)" for s in names)
        lines.append(
            f"| {row['system']} | {speed} | {row['sts_b_spearman']:.2f} | {row['sts_b_delta']:+.2f} | "
            f"{row['min_cosine_to_fp32']:.4f} |"
        )
    held = [r for r in rows if abs(r["sts_b_delta"]) <= QUALITY_BAR and r["min_cosine_to_fp32"] > 0.9]
    lines += ["", f"Within {QUALITY_BAR} STS-B points of fp32 (and no vector off by more than cosine 0.9), per mix:"]
    for s in names:
        ours = max((r for r in held if r["system"].startswith("llembed")), key=lambda r: r["texts_per_s"][s])
        peer = max((r for r in held if not r["system"].startswith("llembed")), key=lambda r: r["texts_per_s"][s])
        ratio = ours["texts_per_s"][s] / peer["texts_per_s"][s]
        lines.append(f"- {s}: fastest llembed {ours['system']} {ours['texts_per_s'][s]:.1f}/s, fastest peer "
                     f"{peer['system']} {peer['texts_per_s'][s]:.1f}/s: **{ratio:.2f}×**")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
