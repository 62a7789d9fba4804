"""``dtype="int8"``: int8 matrix products for CPUs without native bf16, with the quality of float32.

Naive int8 (``torch.ao.quantization.quantize_dynamic``: one scale per weight matrix and one per batch of
activations) drops the minimum cosine to float32 to about 0.70 on a decoder: LLM activations have a few outlier
channels, and one scale for a whole batch also makes a text's vector depend on its batch. Here instead:

- **SmoothQuant-style smoothing** (Xiao et al., 2023): each linear layer's input channel ``j`` is divided by
  ``s_j = max|x_j|^α / max|W_:,j|^(1-α)`` and its weight column multiplied by it, so outlier channels move into
  the weights, which are quantized per output channel. ``max|x_j|`` is measured once on real text
  (:func:`calibrate`, 256 bundled sentences) and stored with the model (:func:`save_scales`).
- **Per-token activation scales**: every token row is quantized with its own scale, so rows stay independent —
  a batch gives exactly what its texts give one by one.
- int8 × int8 → int32 products through ``torch._int_mm`` (oneDNN, VNNI where the CPU has it); the model's other
  operations (norms, attention, the LM head) stay in float32.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from llembed.errors import RecipeError

SMOOTHING_ALPHA = 0.75
"""SmoothQuant's migration strength: 0 keeps activations as they are, 1 moves all their range into weights."""
KEEP_FLOAT = ("mlp.down_proj", "mlp.c_proj", "fc2")
"""The MLP's output projection (Llama/Qwen/Mistral/Gemma, GPT-2, OPT/Phi names) stays float32: its input, the
gated activation, carries the largest outliers. Measured on SmolLM2 (``benchmarks/quality_by_dtype.py``), SciFact
nDCG@10 against float32's 33.12: all int8 at α 0.5 31.68, α 0.75 30.79; this projection float32 at α 0.5 32.03,
at α 0.75 32.79 in one run and 32.23 in the next (40 queries: about ±0.5 between runs)."""


def calibration_texts() -> list[str]:
    """The bundled calibration sentences (Banking77 train, SNLI; see ``llembed/data/SOURCE.txt``)."""
    lines = resources.files("llembed").joinpath("data/calibration.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def _weight_in_out(module: nn.Module) -> torch.Tensor:
    """The weight as (in, out): ``nn.Linear`` stores (out, in), GPT-2's ``Conv1D`` (in, out)."""
    return module.weight.t() if isinstance(module, nn.Linear) else module.weight


def target_linears(blocks: nn.ModuleList) -> dict[str, nn.Module]:
    """The matrix products inside the transformer blocks that run in int8 (attention and MLP projections but
    :data:`KEEP_FLOAT`), by qualified name. Embeddings and the LM head are left as they are."""
    from transformers.pytorch_utils import Conv1D

    found = {}
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear | Conv1D) and not name.endswith(KEEP_FLOAT):
                found[f"{index}.{name}"] = module
    if not found:
        raise RecipeError("int8: no linear layers found in the transformer blocks")
    return found


@torch.inference_mode()
def calibrate(
    model: nn.Module,
    blocks: nn.ModuleList,
    tokenizer,
    texts: Sequence[str],
    max_length: int = 256,
    batch_size: int = 32,
) -> dict[str, torch.Tensor]:
    """Per input channel of every target linear layer, the largest |activation| over the real tokens of
    ``texts`` (padding rows are left out of the statistics)."""
    linears = target_linears(blocks)
    ranges: dict[str, torch.Tensor] = {}
    real_rows: list[torch.Tensor] = []  # the current batch's non-padding token rows (flattened)

    def record(name: str):
        def hook(_module, args):
            rows = args[0].detach().reshape(-1, args[0].shape[-1])[real_rows[0]]
            peak = rows.abs().amax(dim=0).float()
            ranges[name] = peak if name not in ranges else torch.maximum(ranges[name], peak)

        return hook

    handles = [module.register_forward_pre_hook(record(name)) for name, module in linears.items()]
    base = getattr(model, "base_model", model)  # the transformer alone: no LM head over the vocabulary
    device = next(model.parameters()).device
    ordered = sorted(texts, key=len)
    try:
        for start in range(0, len(ordered), batch_size):
            batch = tokenizer(ordered[start : start + batch_size], truncation=True, max_length=max_length,
                              padding=True, return_tensors="pt")  # fmt: skip
            real_rows[:] = [batch["attention_mask"].reshape(-1).bool().to(device)]
            base(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return ranges


class Int8Linear(nn.Module):
    """A linear layer computed in int8: smoothed, weights per output channel, activations per token."""

    def __init__(self, module: nn.Module, input_range: torch.Tensor | None, alpha: float = SMOOTHING_ALPHA):
        super().__init__()
        weight = _weight_in_out(module).detach().float()  # (in, out)
        if input_range is not None:
            weight_range = weight.abs().amax(dim=1).clamp(min=1e-5)
            smooth = (input_range.float().clamp(min=1e-5) ** alpha / weight_range ** (1 - alpha)).clamp(min=1e-5)
            weight = weight * smooth[:, None]
            self.register_buffer("inverse_smooth", 1.0 / smooth)
        else:
            self.inverse_smooth = None
        weight_scale = weight.abs().amax(dim=0).clamp(min=1e-8) / 127.0  # one per output channel
        self.register_buffer("weight_int8", torch.round(weight / weight_scale).to(torch.int8))
        self.register_buffer("weight_scale", weight_scale)
        bias = getattr(module, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.in_features, self.out_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        rows = x.reshape(-1, shape[-1]).float()
        if self.inverse_smooth is not None:
            rows = rows * self.inverse_smooth
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
        quantized = torch.round(rows / row_scale).to(torch.int8)
        out = torch._int_mm(quantized, self.weight_int8).float() * (row_scale * self.weight_scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], self.out_features).to(dtype)

    def extra_repr(self) -> str:
        smoothed = self.inverse_smooth is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, smoothed={smoothed}"


def quantize(blocks: nn.ModuleList, ranges: dict[str, torch.Tensor] | None, alpha: float = SMOOTHING_ALPHA) -> int:
    """Replace every target linear layer of ``blocks`` by an :class:`Int8Linear` (smoothed where ``ranges`` has
    its input range); returns how many were replaced."""
    linears = target_linears(blocks)
    if ranges is not None:
        missing = sorted(set(linears) - set(ranges))
        if missing:
            raise RecipeError(f"int8 scales do not fit this model: no range for {', '.join(missing[:3])}")
    for name, module in linears.items():
        block, _, path = name.partition(".")
        parent_path, _, attribute = path.rpartition(".")
        parent = blocks[int(block)].get_submodule(parent_path) if parent_path else blocks[int(block)]
        setattr(parent, attribute, Int8Linear(module, None if ranges is None else ranges[name], alpha))
    return len(linears)


def save_scales(path: str | Path, ranges: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """Write calibrated input ranges (safetensors, atomically)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file({name: value.contiguous() for name, value in ranges.items()}, str(partial), metadata=meta)
    partial.replace(path)
    return path


def load_scales(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def weights_fingerprint(model: nn.Module) -> str:
    """A short digest of the weights' names, shapes and a sample of values: calibrations are cached per model."""
    digest = hashlib.sha256()
    for name, parameter in model.named_parameters():
        flat = parameter.detach().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tuple(parameter.shape)).encode())
        digest.update(flat[:: max(1, flat.numel() // 64)][:64].float().numpy().tobytes())
    return digest.hexdigest()[:20]
