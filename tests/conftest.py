"""Shared fixtures: tiny random decoders (Llama, Qwen2, GPT-2) built in code, and the real default model."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from llembed.backbone import Backbone
from llembed.model_sources import dequantized_gguf, locate

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays a guitar.",
    "The stock market fell sharply on Monday after the announcement of new tariffs on imported steel.",
    "Cats sleep.",
    "A woman slices tomatoes in a small kitchen while the radio plays an old song.",
]


@pytest.fixture(scope="session")
def default_model_dir():
    """The default model (SmolLM2-135M-Instruct), dequantized once into the llembed cache."""
    return dequantized_gguf(locate(None))


@pytest.fixture(scope="session")
def decoder_tokenizer(default_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


def _tiny_config(kind: str, vocab_size: int):
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    if kind == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    if kind == "qwen2":
        return Qwen2Config(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        )
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=4, n_head=4, n_positions=512)
    raise ValueError(kind)


TINY_KINDS = ("llama", "qwen2", "gpt2")


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, decoder_tokenizer):
    """Tiny random decoders saved to disk with the default model's tokenizer, loadable by path."""
    from transformers import AutoModelForCausalLM

    dirs = {}
    for kind in TINY_KINDS:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_tiny_config(kind, len(decoder_tokenizer)))
        path = tmp_path_factory.mktemp(f"tiny-{kind}")
        model.save_pretrained(path)
        decoder_tokenizer.save_pretrained(path)
        dirs[kind] = path
    return dirs


@pytest.fixture(scope="session")
def tiny_backbones(tiny_model_dirs):
    return {kind: Backbone.load(locate(str(path)), dtype="float32") for kind, path in tiny_model_dirs.items()}


@pytest.fixture(scope="session")
def default_embedder(default_model_dir):
    from llembed import Embedder

    return Embedder.from_pretrained(None, dtype="float32")


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray of 2 CPUs for one test module (so that it does not idle beside the rest of the suite)."""
    import logging

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_model_dirs):
    """A real `llembed train` output folder: 3 LoRA steps of the tiny Llama on 24 real SNLI triplets."""
    import itertools
    from pathlib import Path

    from llembed.training import TrainConfig, train

    snli = Path(__file__).resolve().parents[1] / "examples" / "data" / "snli" / "triplets.jsonl"
    data = tmp_path_factory.mktemp("run-data") / "snli24.jsonl"
    with snli.open(encoding="utf-8") as handle:
        data.write_text("".join(itertools.islice(handle, 24)), encoding="utf-8")
    output = tmp_path_factory.mktemp("runs") / "tiny-run"
    config = TrainConfig(
        data=[str(data)],
        output_dir=str(output),
        recipe={"model": str(tiny_model_dirs["llama"]), "prompt": "none", "pooling": "mean", "dtype": "float32"},
        batch_size=8,
        max_steps=3,
        save_every=3,
        learning_rate=5e-2,
        warmup_steps=0,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
    )
    train(config)
    return output
