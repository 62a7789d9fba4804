"""LoRA through peft: add trainable adapters to an embedder's backbone (loading one is the backbone's job).

peft injects its layers into the model's own modules, so the backbone keeps working as before (hooks, early
exit, bidirectional attention); the ``PeftModel`` wrapper is only needed to save the adapter.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from llembed.errors import InputError


def add_lora(model: nn.Module, r: int, alpha: int, dropout: float, target_modules, layers: list[int] | None = None):
    """Inject LoRA adapters into ``model`` in place; returns the ``PeftModel`` wrapper (for saving)."""
    from peft import LoraConfig, get_peft_model

    if layers is not None and target_modules == "all-linear":  # peft wants names when layers are chosen
        target_modules = linear_module_names(model)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        layers_to_transform=layers,
        bias="none",
    )
    wrapper = get_peft_model(model, config)
    return wrapper


def adapter_folder(path: str | Path) -> Path:
    """The folder holding a saved LoRA adapter: ``path`` itself, or a ``llembed train`` run folder's ``adapter/``."""
    folder = Path(path)
    if (folder / "adapter" / "adapter_config.json").is_file():
        folder = folder / "adapter"
    if not (folder / "adapter_config.json").is_file():
        raise InputError(f"init_adapter: {path} holds no LoRA adapter (no adapter_config.json there or in adapter/)")
    return folder


def load_lora(model: nn.Module, path: str | Path):
    """Inject a saved LoRA adapter into ``model`` in place, trainable, as the starting point of further training
    (peft casts a bf16-stored adapter to the model's float32); returns the ``PeftModel`` wrapper."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_folder(path)), is_trainable=True)


def linear_module_names(model: nn.Module) -> list[str]:
    """The distinct names of the linear layers inside the transformer blocks (``q_proj``, ``c_attn``, …)."""
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D) and module is not head
    }
    return sorted(names)


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]
