"""sentence-transformers' ONNX and OpenVINO backends (fp32 and int8) on given texts: run by bench_backends.py.

    .venv-peers/bin/python benchmarks/peer_st_backends.py SPEC.json OUT.json

This runs in its own environment (``bash benchmarks/setup_peers.sh``): sentence-transformers' exporters need
optimum-onnx / optimum-intel, which pull transformers 4.x beside torch 2.13, not llembed's transformers 5.23.
SPEC holds the model folder (a causal LM), a work folder, the pooling, the calibration sentences, the text sets
and batch size; each system embeds every set (after a warm-up batch) and its vectors are written next to OUT as
``<system>-<set>.npy``; OUT gets seconds per set, export seconds and versions.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def transformers4_copy(model_dir: Path, folder: Path) -> Path:
    """The model folder as transformers 4.x reads it: the weights and tokenizer linked, the config's rope theta
    where 4.x looks (5.x writes ``rope_parameters``), the tokenizer class 4.x knows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        if (model_dir / name).is_file() and not (folder / name).exists():
            (folder / name).symlink_to(model_dir / name)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config.update({k: v for k, v in (config.get("rope_parameters") or {}).items() if k == "rope_theta"})
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tokenizer = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    return folder


def st_folder(model_dir: str, pooling: str, folder: Path, max_length: int) -> Path:
    """The causal LM as a sentence-transformers folder: Transformer, Pooling, Normalize (written once)."""
    from sentence_transformers import SentenceTransformer, models

    if (folder / "modules.json").is_file():
        return folder
    source = transformers4_copy(Path(model_dir), folder.with_name("model-transformers4"))
    transformer = models.Transformer(str(source), max_seq_length=max_length)
    tokenizer = transformer.tokenizer
    if tokenizer.pad_token is None:  # padding is masked out: any id will do
        tokenizer.pad_token = tokenizer.eos_token
    pool = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode=pooling)
    SentenceTransformer(modules=[transformer, pool, models.Normalize()], device="cpu").save(str(folder))
    return folder


def calibration_dataset(texts: list[str], folder: Path) -> Path:
    """A local dataset folder (``train.jsonl``, column ``text``): the exporter loads it by path, offline."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    return folder


def int8_isa() -> str:
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    return "avx512_vnni" if " avx512_vnni" in flags else "avx512" if " avx512f" in flags else "avx2"


def systems(folder: Path, spec: dict, exports: dict):
    """(name, loader) of each peer; a loader exports what it needs first (timed into ``exports``)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import (
        export_dynamic_quantized_onnx_model,
        export_static_quantized_openvino_model,
    )

    def onnx_fp32():
        return SentenceTransformer(str(folder), backend="onnx", device="cpu")

    def onnx_int8():
        isa = int8_isa()
        name = f"onnx/model_qint8_{isa}.onnx"
        if not (folder / name).is_file():
            export_dynamic_quantized_onnx_model(with_position_ids(onnx_fp32()), isa, str(folder))
        return SentenceTransformer(str(folder), backend="onnx", device="cpu", model_kwargs={"file_name": name})

    def openvino():
        return SentenceTransformer(str(folder), backend="openvino", device="cpu")

    def openvino_int8():
        from optimum.intel import OVQuantizationConfig

        name = "openvino/openvino_model_qint8_quantized.xml"
        if not (folder / name).is_file():
            data = calibration_dataset(spec["calibration"], Path(spec["work"]) / "calibration")
            export_static_quantized_openvino_model(
                with_position_ids(openvino()), OVQuantizationConfig(num_samples=len(spec["calibration"])), str(folder),
                dataset_name=str(data), dataset_config_name="default", dataset_split="train", column_name="text",
            )  # fmt: skip
        return SentenceTransformer(str(folder), backend="openvino", device="cpu", model_kwargs={"file_name": name})

    def timed(name, loader):
        def load():
            start = time.perf_counter()
            model = loader()
            exports[name] = time.perf_counter() - start
            return model

        return load

    return [
        (name, timed(name, loader))
        for name, loader in [
            ("st onnx fp32", onnx_fp32),
            (f"st onnx int8 (dynamic, {int8_isa()})", onnx_int8),
            ("st openvino (default precision)", openvino),
            ("st openvino int8 (static)", openvino_int8),
        ]
    ]


def with_position_ids(model):
    """optimum exports a decoder's graph with a ``position_ids`` input that sentence-transformers never passes
    ("Input position_ids is required by model but not provided"): add them to each tokenized batch, counted over
    real tokens, as the model numbers them."""
    transformer = model[0]
    preprocess = transformer.preprocess

    def preprocess_with_positions(texts, *args, **kwargs):
        features = preprocess(texts, *args, **kwargs)
        mask = features["attention_mask"]
        features["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        return features

    transformer.preprocess = preprocess_with_positions
    return model


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    out = Path(sys.argv[2])
    torch.set_num_threads(spec["threads"])
    folder = st_folder(spec["model_dir"], spec["pooling"], Path(spec["work"]) / "st-model", spec["max_length"])
    exports: dict[str, float] = {}
    report: dict = {"systems": {}, "exports": exports}
    for name, load in systems(folder, spec, exports):
        model = with_position_ids(load())
        model.max_seq_length = spec["max_length"]
        seconds = {}
        for set_name, texts in spec["sets"].items():
            model.encode(texts[:8], batch_size=spec["batch_size"])
            start = time.perf_counter()
            vectors = model.encode(texts, batch_size=spec["batch_size"], convert_to_numpy=True)
            seconds[set_name] = time.perf_counter() - start
            np.save(out.parent / f"{slug(name)}-{slug(set_name)}.npy", vectors.astype(np.float32))
        report["systems"][name] = seconds
        print(f"  {name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), flush=True)
        del model
    import optimum.intel
    import sentence_transformers
    import transformers

    report["versions"] = {
        "sentence-transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "optimum-intel": getattr(optimum.intel, "__version__", "?"),
        "torch": torch.__version__,
    }
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


if __name__ == "__main__":
    main()
