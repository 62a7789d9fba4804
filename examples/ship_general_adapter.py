"""Copy a finished general-adapter run into the package as the ``smollm2-135m-tuned`` alias.

    .venv/bin/python examples/ship_general_adapter.py [--run runs/general-lora]

Writes ``src/llembed/models/smollm2-135m-tuned/``: the run's ``recipe.yaml``, its ``adapter/`` with the LoRA
weights stored in bfloat16 (half the size; they load into the float32 model as exact bf16 values) and a model
card saying what it was trained on. Prints the smallest cosine between the float32 and the shipped adapter's
vectors on real sentences, so the rounding's cost is on record.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from llembed import Embedder  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.model_sources import TUNED_DIR  # noqa: E402

ALIAS = "smollm2-135m-tuned"
BASE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CARD = """# smollm2-135m-tuned

SmolLM2-135M-Instruct (bundled as `smollm2-135m`) with llembed's general-purpose LoRA adapter (r 16 on the top
15 of 30 blocks, weights in bfloat16). Recipe: `instructeol` prompt (retrieval queries get `Instruct: <task>`
before PromptEOL; documents and symmetric texts PromptEOL alone), last-token pooling, texts cut at the model's
length.

Trained with `examples/general_lora.yaml` ({steps} steps of 32, {minutes:.0f} min on a 2-core CPU) on
`examples/data/general/` (built by `examples/build_general_mix.py`): SNLI triplets, STS Benchmark train pairs,
Banking77 train queries, Python standard-library docstring → function pairs, and sentence/passage pairs
distilled from all-MiniLM-L6-v2. Every file was checked against every bundled evaluation set and the examples
holding a scored item were dropped. Scores: `examples/results/general-lora/compare.md`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/general-lora"))
    args = parser.parse_args()
    run = args.run
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    target = TUNED_DIR / ALIAS
    work = Path(tempfile.mkdtemp(prefix=f".{ALIAS}.", dir=TUNED_DIR.parent))
    try:
        (work / "adapter").mkdir()
        shutil.copy(run / "recipe.yaml", work / "recipe.yaml")
        adapter_config = json.loads((run / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = BASE_ID  # not this machine's cache path (llembed loads the alias)
        config_text = json.dumps(adapter_config, indent=2, sort_keys=True) + "\n"
        (work / "adapter" / "adapter_config.json").write_text(config_text, encoding="utf-8")
        weights = load_file(run / "adapter" / "adapter_model.safetensors")
        save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, work / "adapter" / "adapter_model.safetensors")
        card = CARD.format(steps=log[-1]["step"], minutes=log[-1]["seconds"] / 60)
        (work / "README.md").write_text(card, encoding="utf-8")
        for path in [work, *work.rglob("*")]:  # mkdtemp's 0700 and copied modes → what a checkout has
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sentences = [r["sentence1"] for r in load_bundled("stsbenchmark").rows[:200]]
    full = Embedder.from_pretrained(str(run), dtype="float32").encode(sentences)
    shipped = Embedder.from_pretrained(ALIAS, dtype="float32").encode(sentences)
    print(f"wrote {target}; min cosine, float32 vs shipped bf16 adapter: {np.min((full * shipped).sum(1)):.5f}")


if __name__ == "__main__":
    main()
