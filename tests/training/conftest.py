"""Training fixtures: a slice of the bundled real SNLI triplets and configs for the tiny models."""

import itertools
import json
from pathlib import Path

import pytest

SNLI = Path(__file__).resolve().parents[2] / "examples" / "data" / "snli" / "triplets.jsonl"


@pytest.fixture(scope="session")
def snli_slice(tmp_path_factory) -> Path:
    """The first 64 real SNLI triplets (examples/data/snli), as training JSONL."""
    path = tmp_path_factory.mktemp("data") / "snli64.jsonl"
    with SNLI.open(encoding="utf-8") as handle:
        path.write_text("".join(itertools.islice(handle, 64)), encoding="utf-8")
    return path


@pytest.fixture
def tiny_config(tiny_model_dirs, snli_slice, tmp_path):
    from llembed.training import TrainConfig

    def make(**changes):
        fields = {
            "data": [str(snli_slice)],
            "output_dir": str(tmp_path / "run"),
            "recipe": {"model": str(tiny_model_dirs["llama"]), "prompt": "prompteol", "pooling": "last"},
            "batch_size": 8,
            "max_steps": 6,
            "save_every": 2,
            "learning_rate": 1e-3,
            "warmup_steps": 1,
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        }
        fields.update(changes)
        return TrainConfig(**fields)

    return make


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
