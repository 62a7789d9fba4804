"""What a finished run leaves in its ``output_dir``, each part written atomically:

- ``adapter/``      the peft adapter (LoRA runs)
- ``model/``        the full weights (full fine-tuning, or LoRA with ``merge: true``), loadable without peft
- ``recipe.yaml``   the tuned embedder: ``Embedder.from_pretrained(output_dir)`` or ``--recipe`` loads it
- ``sentence-transformers/``  with ``export_sentence_transformers: true`` (where ST can express the recipe)
- ``train_log.jsonl``, ``loss.png``, ``train_config.yaml``
"""

from __future__ import annotations

import json
from pathlib import Path

from llembed.io_utils import atomic_directory, atomic_write, atomic_write_text
from llembed.model_sources import BUNDLED_MODELS


def base_model_reference(model: str | None) -> str | None:
    """Aliases stay aliases; paths become absolute so the recipe works from any directory."""
    if model is None or model.lower() in BUNDLED_MODELS:
        return model
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def write_outputs(trainer, log: list[dict]) -> Path:
    config = trainer.config
    out = config.output_path
    embedder = trainer.embedder
    recipe = trainer.base_recipe.replace(model=base_model_reference(embedder.recipe.model))
    if trainer.peft_model is not None:
        atomic_directory(out / "adapter", lambda tmp: trainer.peft_model.save_pretrained(tmp))
        recipe = recipe.replace(adapter="adapter")
    if config.method == "full" or config.merge:
        model = trainer.peft_model.merge_and_unload() if trainer.peft_model is not None else embedder.backbone.model
        embedder.backbone.model = model

        def save_model(tmp: Path) -> None:
            model.save_pretrained(tmp)
            embedder.tokenizer.save_pretrained(tmp)

        atomic_directory(out / "model", save_model)
        recipe = recipe.replace(model="model", adapter=None)
    recipe_path = recipe.save(out / "recipe.yaml")
    atomic_write_text(out / "train_log.jsonl", "".join(json.dumps(entry) + "\n" for entry in log))
    if log:
        _plot_loss(log, out / "loss.png")
    if config.export_sentence_transformers:
        from llembed.embedder import Embedder
        from llembed.integrations.sentence_transformers import export_sentence_transformers

        tuned = Embedder.from_recipe(recipe_path, dtype="float32")  # exported weights stay full precision
        atomic_directory(out / "sentence-transformers", lambda tmp: export_sentence_transformers(tuned, tmp))
    return recipe_path


def _plot_loss(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    tasks = sorted({e.get("task", "") for e in log})
    for task in tasks:  # tasks' losses differ in kind and scale (InfoNCE, CoSENT, distillation): one curve each
        entries = [e for e in log if e.get("task", "") == task]
        label = task if len(tasks) > 1 else None
        axis.plot([e["step"] for e in entries], [e["loss"] for e in entries], linewidth=1, label=label)
    if len(tasks) > 1:
        axis.legend(fontsize=8)
    axis.set_xlabel("step")
    axis.set_ylabel("training loss")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
