"""``dtype="int8"``: int8 matrix products for CPUs without native bf16, with the quality of float32.

Naive int8 (``torch.ao.quantization.quantize_dynamic``: one scale per weight matrix and one per batch of
activations) drops the minimum cosine to float32 to about 0.70 on a decoder: LLM activations have a few outlier
channels, and one scale for a whole batch also makes a text's vector depend on its batch. Here instead:

- **SmoothQuant-style smoothing** (Xiao et al., 2023): each linear layer's input channel ``j`` is divided by
  ``s_j = max|x_j|^α / max|W_:,j|^(1-α)`` and its weight column multiplied by it, so outlier channels move into
  the weights, which are quantized per output channel. ``max|x_j|`` is measured once on real text
  (:func:`calibrate`, 256 bundled sentences) and stored with the model (:func:`save_scales`).
- **Outlier channels in float** (LLM.int8()'s decomposition, Dettmers et al., 2022): the few input channels with
  the largest calibrated range (:data:`OUTLIER_FRACTION` of them) are multiplied in float32 beside the int8
  product, so they neither need int8 steps nor stretch the other channels' scale. This is what lets the MLP's
  output projection, whose input carries ranges in the hundreds, run in int8 too.
- **Per-token activation scales**: every token row is quantized with its own scale, so rows stay independent —
  a batch gives exactly what its texts give one by one.
- **One quantized input per tensor**: projections fed the very same tensor (query/key/value, gate/up) share one
  smoothing vector, so that tensor is smoothed and quantized once (:class:`SharedInput`), not once per projection.
- int8 × int8 → int32 products through ``torch._int_mm`` (oneDNN, VNNI where the CPU has it); the model's other
  operations (norms, attention, the LM head) stay in float32. Without VNNI, oneDNN's int8 product saturates on
  full-range weights, so weights are quantized to ±63 there (:func:`int8_weight_limit`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from llembed.errors import RecipeError

SMOOTHING_ALPHA = 0.75
"""SmoothQuant's migration strength: 0 keeps activations as they are, 1 moves all their range into weights."""
OUTLIER_FRACTION = 1 / 64
"""Share of a projection's input channels (those with the largest calibrated range) kept in float32: 9 of
SmolLM2's 576 hidden channels."""
MLP_OUTPUT = ("mlp.down_proj", "mlp.c_proj", "fc2")
"""The MLP's output projection (Llama/Qwen/Mistral/Gemma, GPT-2, OPT/Phi names): its input, the gated
activation, carries the largest outliers (ranges up to 500 in SmolLM2's last block, against a median of 7.5)."""
MLP_OUTPUT_OUTLIER_FRACTION = 1 / 8
"""Its share of float32 channels (192 of SmolLM2's 1,536). Measured on 600 STS-B sentences and 300 mixed-length
texts, minimum cosine to float32 on the mixed texts: 0.9910 at 1/64, 0.9962 at 1/16, 0.9981 at 1/8 (the whole
projection in float32: 0.9984), 1.3× the speed of keeping it float32."""
CALIBRATION_VERSION = "v2"
"""Part of a cached calibration's file name; v2 measures every projection in the blocks (v1 skipped the MLP's
output projection)."""


def calibration_texts() -> list[str]:
    """The bundled calibration sentences (Banking77 train, SNLI; see ``llembed/data/SOURCE.txt``)."""
    lines = resources.files("llembed").joinpath("data/calibration.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def _weight_in_out(module: nn.Module) -> torch.Tensor:
    """The weight as (in, out): ``nn.Linear`` stores (out, in), GPT-2's ``Conv1D`` (in, out)."""
    return module.weight.t() if isinstance(module, nn.Linear) else module.weight


def target_linears(blocks: nn.ModuleList) -> dict[str, nn.Module]:
    """The matrix products inside the transformer blocks that run in int8 (attention and MLP projections), by
    qualified name. Embeddings and the LM head are left as they are."""
    from transformers.pytorch_utils import Conv1D

    found = {}
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear | Conv1D):
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


class SharedInput(nn.Module):
    """Smooths and quantizes a projection's input per token; projections fed the same tensor share one, so the
    work is done once for all of them.

    ``inverse_smooth`` is 1/s per channel, 0 on the outlier channels (they leave the int8 part entirely and
    go through float32 with their original values).
    """

    def __init__(self, inverse_smooth: torch.Tensor, outlier_index: torch.Tensor, consumers: int = 1):
        super().__init__()
        self.register_buffer("inverse_smooth", inverse_smooth)
        self.register_buffer("outlier_index", outlier_index)
        self.consumers = consumers
        self._input: torch.Tensor | None = None  # the tensor the cached result belongs to (held, so `is` is exact)
        self._result: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._reads = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(int8 rows, per-row scale, float32 outlier columns or None)`` of ``x`` flattened to rows."""
        if self._input is not None and x is self._input:
            result = self._result
        else:
            result = self._quantize(x)
            self._input, self._result, self._reads = x, result, 0
        self._reads += 1
        if self._reads >= self.consumers:  # every projection of the group has read it: let the tensors go
            self._input = self._result = None
        return result

    def _quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        rows = x.reshape(-1, x.shape[-1]).float()
        outliers = rows.index_select(1, self.outlier_index) if self.outlier_index.numel() else None
        smoothed = rows * self.inverse_smooth
        row_scale = smoothed.abs().amax(dim=1, keepdim=True).clamp_(min=1e-8).div_(127.0)
        quantized = torch.round(smoothed.div_(row_scale)).to(torch.int8)
        return quantized, row_scale, outliers


class Int8Linear(nn.Module):
    """A linear layer computed in int8 (smoothed, weights per output channel, activations per token), plus its
    outlier input channels in float32."""

    def __init__(self, module: nn.Module, shared: SharedInput, smooth: torch.Tensor):
        super().__init__()
        weight = _weight_in_out(module).detach().float()  # (in, out)
        outlier_index = shared.outlier_index
        self.register_buffer("outlier_weight", weight.index_select(0, outlier_index).contiguous())
        smoothed = weight * smooth[:, None]
        smoothed.index_fill_(0, outlier_index, 0.0)  # their inputs are zero in the int8 part
        self.weight_limit = int8_weight_limit()
        weight_scale = smoothed.abs().amax(dim=0).clamp(min=1e-8) / self.weight_limit  # one per output channel
        self.register_buffer("weight_int8", torch.round(smoothed / weight_scale).to(torch.int8))
        self.register_buffer("weight_scale", weight_scale)
        bias = getattr(module, "bias", None)
        self.register_buffer("bias", None if bias is None else bias.detach().float())
        self.shared = shared
        self.in_features, self.out_features = weight.shape

    @classmethod
    def alone(
        cls, module: nn.Module, input_range: torch.Tensor, alpha: float = SMOOTHING_ALPHA, outlier_fraction: float = 0
    ) -> Int8Linear:
        """One layer with an input of its own (calibrated ``input_range``), as :func:`quantize` builds groups."""
        weight = _weight_in_out(module).detach().float()
        shared, smooth = shared_input(input_range, [weight], alpha, outlier_fraction)
        return cls(module, shared, smooth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        quantized, row_scale, outliers = self.shared(x)
        out = torch._int_mm(quantized, self.weight_int8).float()
        out.mul_(row_scale).mul_(self.weight_scale)
        if outliers is not None:
            out.addmm_(outliers, self.outlier_weight)
        if self.bias is not None:
            out.add_(self.bias)
        return out.reshape(*shape[:-1], self.out_features).to(dtype)

    def extra_repr(self) -> str:
        outliers = self.shared.outlier_index.numel()
        return f"in_features={self.in_features}, out_features={self.out_features}, float_channels={outliers}"


@functools.cache
def int8_weight_limit() -> int:
    """The largest int8 weight magnitude ``torch._int_mm`` multiplies exactly on this CPU: 127 with VNNI or AMX
    (products summed in int32), 63 without. oneDNN's AVX2 and AVX-512 kernels without VNNI shift activations to
    uint8 and add pairs of products in int16 (``vpmaddubsw``), which saturates above 255·64·2; measured under
    ``ONEDNN_MAX_CPU_ISA=AVX2``, full-range weights put the SciFact nDCG@10 2.69 points below float32's (30.43
    against 33.12). Found by multiplying worst-case operands once, so it holds for whatever kernel oneDNN picks."""
    activations = torch.full((32, 64), 127, dtype=torch.int8)  # shifted to uint8: 255 in every pair
    weights = torch.full((64, 32), 127, dtype=torch.int8)
    weights[:, 1::2] = -127  # pairs of 255·127 summing to ±64,770, past int16 either way
    exact = activations.double() @ weights.double()
    return 127 if torch.equal(torch._int_mm(activations, weights).double(), exact) else 63


def smoothing(input_range: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """SmoothQuant's per-channel factor for projections sharing one input: ``weights`` are (in, out)."""
    weight_range = torch.stack([w.abs().amax(dim=1) for w in weights]).amax(dim=0).clamp(min=1e-5)
    return (input_range.float().clamp(min=1e-5) ** alpha / weight_range ** (1 - alpha)).clamp(min=1e-5)


def outlier_channels(input_range: torch.Tensor, fraction: float = OUTLIER_FRACTION) -> torch.Tensor:
    """The input channels with the largest calibrated range, ``ceil(fraction × channels)`` of them (sorted)."""
    count = min(input_range.numel(), math.ceil(fraction * input_range.numel())) if fraction > 0 else 0
    return torch.topk(input_range.float(), count).indices.sort().values


def sharing_groups(names: Sequence[str], ranges: dict[str, torch.Tensor]) -> list[list[str]]:
    """Projections of one block whose calibrated input ranges are bit-identical: they read the same tensor
    (query/key/value, gate/up). A wrong guess costs speed only: a projection handed another tensor quantizes
    its own input (with the group's smoothing, which suits any input)."""
    groups: list[list[str]] = []
    for name in names:
        block = name.partition(".")[0]
        for group in groups:
            if group[0].partition(".")[0] == block and torch.equal(ranges[group[0]], ranges[name]):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def shared_input(
    input_range: torch.Tensor, weights: Sequence[torch.Tensor], alpha: float, outlier_fraction: float
) -> tuple[SharedInput, torch.Tensor]:
    """The input quantizer of projections that read one tensor (weights (in, out)), and their smoothing."""
    smooth = smoothing(input_range, weights, alpha)
    outlier_index = outlier_channels(input_range, outlier_fraction)
    inverse = (1.0 / smooth).index_fill_(0, outlier_index, 0.0)
    return SharedInput(inverse, outlier_index, consumers=len(weights)), smooth


def quantize(
    blocks: nn.ModuleList,
    ranges: dict[str, torch.Tensor],
    alpha: float = SMOOTHING_ALPHA,
    outlier_fraction: float = OUTLIER_FRACTION,
    mlp_output_fraction: float = MLP_OUTPUT_OUTLIER_FRACTION,
) -> int:
    """Replace every target linear layer of ``blocks`` by an :class:`Int8Linear`; returns how many were replaced.
    ``outlier_fraction`` (``mlp_output_fraction`` for :data:`MLP_OUTPUT`): the share of input channels kept
    in float32."""
    linears = target_linears(blocks)
    missing = sorted(set(linears) - set(ranges))
    if missing:
        raise RecipeError(f"int8 scales do not fit this model: no range for {', '.join(missing[:3])}")
    for group in sharing_groups(list(linears), ranges):
        weights = [_weight_in_out(linears[name]).detach().float() for name in group]
        wide = any(name.endswith(MLP_OUTPUT) for name in group)
        fraction = mlp_output_fraction if wide else outlier_fraction
        shared, smooth = shared_input(ranges[group[0]], weights, alpha, fraction)
        for name in group:
            block, _, path = name.partition(".")
            parent_path, _, attribute = path.rpartition(".")
            parent = blocks[int(block)].get_submodule(parent_path) if parent_path else blocks[int(block)]
            setattr(parent, attribute, Int8Linear(linears[name], shared, smooth))
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
