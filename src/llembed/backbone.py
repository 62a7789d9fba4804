"""The backbone: a Hugging Face model, run up to the deepest layer a recipe pools from.

- Loading: local folders, GGUF (dequantized once, cached), BERT-like encoders; offline only.
- ``dtype="auto"``: bfloat16 where the CPU has native bf16 (AMX / AVX-512-BF16) or on CUDA, else float32.
  ``dtype="int8"``: smoothed int8 matrix products on CPU (:mod:`llembed.quantization`), calibrated once per model.
- Bidirectional attention through transformers' own mask machinery: ``config.is_causal = False`` makes
  ``create_causal_mask`` build a bidirectional (padding-only) mask for every attention implementation, and the
  attention modules' ``is_causal`` flag is cleared so SDPA/flash kernels don't re-apply causality.
- Hidden states are captured with forward hooks on the decoder blocks; the forward pass stops right after
  the deepest block needed, so layers above it are never computed. A pass to the final layer only needs no
  hook, so it can run through ``torch.compile``.
- One lock per backbone serialises passes: hooks and the attention mode are set on the shared modules, so two
  embedders sharing a backbone (``Embedder.replace``) must not interleave their passes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from llembed.allocator import keep_freed_memory
from llembed.errors import RecipeError
from llembed.model_sources import ModelSource, dequantized_gguf
from llembed.prefix_cache import PrefixCache, PrefixState
from llembed.tokenization import TokenBatch

BlockHook = tuple[int, Callable]
"""(block index, forward pre-hook ``(module, args, kwargs) -> (args, kwargs) | None``) a pass installs: how a
prompt strategy (Token Prepending) acts inside the model without the backbone knowing it."""

logger = logging.getLogger(__name__)

FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "final_norm")


class _StopForward(Exception):
    """Raised by a hook once the deepest needed layer has run."""


PRE_BF16_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"})
"""``ONEDNN_MAX_CPU_ISA`` levels below native bf16: capped there, oneDNN emulates bf16 products."""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AMX or AVX-512-BF16 in the CPU's flags, unless ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below them (as a
    deployment may, or ``benchmarks/bench_encode.py --isa-cap AVX2`` does)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() in PRE_BF16_ISAS:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return False
    return any(flag in flags for flag in (" amx_bf16", " avx512_bf16"))


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (benchmarks and reports say which CPU they ran on)."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def is_decoder_config(config) -> bool:
    """Causal LMs are decoders; models that also have a masked-LM head (BERT, RoBERTa, …) are encoders."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and (
        config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


@dataclass
class Backbone:
    model: nn.Module
    """The full model: ``*ForCausalLM`` for decoders (its LM head gives sparse vectors), ``AutoModel`` else."""
    tokenizer: object
    is_decoder: bool
    name: str = "model"
    compiled: nn.Module | None = None
    """``torch.compile`` of :attr:`base` (see :meth:`compile`); used for plain passes to the final layer."""
    quantization: str | None = None
    """``"int8"`` once :meth:`quantize_int8` replaced the blocks' linear layers."""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    """Held for every forward pass (hooks and attention flags live on the shared modules)."""
    _generation: int = field(default=0, repr=False, compare=False)
    _compiled_for: tuple | None = field(default=None, repr=False, compare=False)
    """:meth:`weights_version` when :meth:`compile` froze the weights into :attr:`compiled`."""

    @classmethod
    def load(
        cls, source: ModelSource, dtype: str = "auto", device: str | None = None, adapter: str | None = None
    ) -> Backbone:
        """Load ``source`` (dequantizing a GGUF file once), with a peft ``adapter`` merged into its weights."""
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        path = source.path
        if source.gguf_file is not None:
            path = dequantized_gguf(source)
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype == "int8" and target.type != "cpu":
            raise RecipeError(f"dtype int8 is the CPU path; on {target.type} use bfloat16 or float16")
        torch_dtype = torch.float32 if dtype == "int8" else resolve_dtype(dtype, target)
        if target.type == "cpu":
            keep_freed_memory()
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        decoder = is_decoder_config(config)
        loader = AutoModelForCausalLM if decoder else AutoModel
        model = loader.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if adapter is not None:
            model = merge_adapter(model, adapter)
        backbone = cls.wrap(model.to(target), tokenizer, name=source.name)
        if dtype == "int8":
            backbone.quantize_int8()
        return backbone

    @classmethod
    def wrap(cls, model: nn.Module, tokenizer, name: str = "model") -> Backbone:
        """Use an already loaded model and tokenizer (e.g. a tiny model built in code)."""
        model.eval()
        if tokenizer.pad_token_id is None:  # GPT-2 & co.: pad positions are masked, any id will do
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return cls(model, tokenizer, is_decoder_config(model.config), name)

    # ------------------------------------------------------------------ structure
    @property
    def base(self) -> nn.Module:
        return self.model.base_model

    @functools.cached_property
    def layers(self) -> nn.ModuleList:
        """The stack of transformer blocks (``model.layers``, ``h``, ``encoder.layer``, …)."""
        count = self.model.config.num_hidden_layers
        for _, module in self.base.named_modules():
            if isinstance(module, nn.ModuleList) and len(module) == count:
                return module
        raise RecipeError(f"cannot find the {count} transformer blocks of {type(self.model).__name__}")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def dtype_name(self) -> str:
        """What the matrix products run in: ``int8`` when quantized, else the weights' dtype (``bfloat16``, …)."""
        return self.quantization or str(self.dtype).removeprefix("torch.")

    def quantize_int8(self, scales: str | Path | None = None) -> None:
        """Run the blocks' linear layers in int8 (see :mod:`llembed.quantization`). ``scales``: a calibration file;
        by default one cached per model weights, calibrated on the bundled sentences on first use (seconds)."""
        from llembed.model_sources import cache_root
        from llembed.quantization import (
            CALIBRATION_VERSION,
            calibrate,
            calibration_texts,
            load_scales,
            quantize,
            save_scales,
            weights_fingerprint,
        )

        if self.quantization is not None:
            return
        if self.dtype != torch.float32:
            raise RecipeError(f"int8 quantizes float32 weights, not {self.dtype_name}")
        fingerprint = weights_fingerprint(self.model)
        cached = cache_root() / "int8" / f"{fingerprint}-{CALIBRATION_VERSION}.safetensors"
        path = Path(scales) if scales is not None else cached
        if path.is_file():
            ranges = load_scales(path)
        else:
            texts = calibration_texts()
            logger.info("int8: calibrating %s on %d sentences (once; cached in %s)", self.name, len(texts), path)
            ranges = calibrate(self.model, self.layers, self.tokenizer, texts)
            save_scales(path, ranges, {"model": self.name, "weights": fingerprint, "texts": str(len(texts))})
        with self.lock:
            quantize(self.layers, ranges)
            self.quantization = "int8"
            self.compiled = None
            self.weights_changed()

    @property
    def max_positions(self) -> int:
        config = self.model.config
        limits = [getattr(config, name, None) for name in ("max_position_embeddings", "n_positions")]
        limits = [limit for limit in limits if isinstance(limit, int) and limit > 0]
        return min(limits) if limits else 512

    @property
    def has_sliding_window(self) -> bool:
        config = self.model.config
        return bool(getattr(config, "sliding_window", None)) or "sliding_attention" in (
            getattr(config, "layer_types", None) or ()
        )

    def lm_head(self) -> nn.Module:
        head = self.model.get_output_embeddings() if self.is_decoder else None
        if head is None:
            raise RecipeError(f"{self.name} has no LM head: sparse lexical vectors need a causal LM")
        return head

    def final_norm(self) -> nn.Module | None:
        for name in FINAL_NORM_NAMES:
            module = getattr(self.base, name, None)
            if isinstance(module, nn.Module):
                return module
        return None

    def compile(self) -> None:
        """Compile the transformer with ``torch.compile`` (inductor, dynamic shapes) for plain inference passes.

        Inductor *freezes* the weights: they become constants of the graph, so the CPU's matrix products run on
        weights packed once for oneDNN, and norms, rotary embeddings and the gated activation fuse into a few
        kernels. Weights changed afterwards (training, :meth:`weights_changed`) send passes back to eager mode
        until ``compile()`` is called again. Measure before using it (``benchmarks/bench_encode.py --compile``;
        the README has the numbers): the first batch compiles for a minute or more. Passes that need hooks (a
        middle layer, Token Prepending), a prefix cache or bidirectional attention run eagerly.
        """
        if self.quantization is not None:
            raise RecipeError(f"compile runs float passes: this backbone's layers are {self.quantization}")
        if self.compiled is None or self._compiled_for != self.weights_version():
            self.compiled = torch.compile(self.base, dynamic=True, options={"freezing": True})
            self._compiled_for = self.weights_version()

    def _compiled_model(self) -> nn.Module | None:
        """The compiled model while it still holds the current weights (frozen into its graph), else None."""
        if self.compiled is None:
            return None
        if self._compiled_for is not None and self._compiled_for != self.weights_version():
            logger.warning("the weights changed after compile(): passes run eagerly until compile() is called again")
            self.compiled = None
        return self.compiled

    @functools.cached_property
    def prefix_cache(self) -> PrefixCache:
        """Shared-prefix states of this backbone's passes, shared by every embedder on it, dropped when the
        weights change."""
        return PrefixCache(self.weights_version)

    def weights_version(self) -> tuple:
        """Changes whenever the weights may have: an optimizer step or any in-place update (tensor version
        counters), ``.to(device or dtype)`` (storage and dtype), or :meth:`weights_changed`. Caches of
        computed states (the prefix cache) key on it."""
        return (
            self._generation,
            tuple((p.data_ptr(), p.dtype, p.device, p._version) for p in self.model.parameters()),
        )

    def weights_changed(self) -> None:
        """Say that the weights were changed behind torch's back (``param.data`` writes): caches drop their states."""
        self._generation += 1

    # ------------------------------------------------------------------ attention mode
    @contextlib.contextmanager
    def attention(self, bidirectional: bool) -> Iterator[None]:
        if not bidirectional or not self.is_decoder:
            yield
            return
        configs = {id(m.config): m.config for m in self.model.modules() if hasattr(m, "config")}.values()
        modules = [m for m in self.model.modules() if getattr(m, "is_causal", None) is True]
        saved = [(c, getattr(c, "is_causal", True)) for c in configs]
        try:
            for config in configs:
                config.is_causal = False
            for module in modules:
                module.is_causal = False
            yield
        finally:
            for config, value in saved:
                config.is_causal = value
            for module in modules:
                module.is_causal = True

    # ------------------------------------------------------------------ forward
    def hidden_states(
        self,
        batch: TokenBatch,
        layer_ids: Sequence[int],
        bidirectional: bool = False,
        block_hooks: Sequence[BlockHook] = (),
        prefix: PrefixState | None = None,
        grad: bool = False,
    ) -> dict[int, torch.Tensor]:
        """Hidden states at ``layer_ids`` (0 = embeddings, ``num_layers`` = final output), stopping early.

        ``block_hooks``: a prompt strategy's forward pre-hooks ``(block index, hook)`` for this pass (Token
        Prepending). ``prefix``: the batch's first ``prefix.length`` columns are a shared prompt prefix whose
        keys/values and states were computed once (:meth:`encode_prefix`); only the remaining columns run.
        ``grad``: keep the autograd graph (training); otherwise the pass runs in inference mode.
        """
        with contextlib.nullcontext() if grad else torch.inference_mode():
            return self._states(batch, layer_ids, bidirectional, block_hooks, prefix)

    def _states(self, batch, layer_ids, bidirectional, block_hooks, prefix) -> dict[int, torch.Tensor]:
        skip = 0 if prefix is None else prefix.length
        rows = batch.input_ids.shape[0]
        cache = None
        if prefix is not None:
            if bidirectional:
                raise RecipeError("a cached prefix cannot see later tokens: no prefix cache with bidirectional")
            cache = prefix.expanded_cache(rows)
        captured = self._run(
            batch.input_ids[:, skip:],
            batch.attention_mask,
            batch.position_ids[:, skip:],
            layer_ids,
            bidirectional=bidirectional,
            block_hooks=block_hooks,
            cache=cache,
        )
        if prefix is not None:
            for index in layer_ids:
                shared = prefix.hidden[index].expand(rows, -1, -1)
                captured[index] = torch.cat([shared, captured[index]], dim=1)
        return captured

    @torch.inference_mode()
    def encode_prefix(self, ids: Sequence[int], layer_ids: Sequence[int]) -> PrefixState:
        """Run a prompt prefix once; its keys/values and states then serve every batch that starts with it."""
        from transformers import DynamicCache

        input_ids = torch.tensor([list(ids)])
        cache = DynamicCache(config=self.model.config)
        hidden = self._run(
            input_ids,
            torch.ones_like(input_ids),
            torch.arange(len(ids)).unsqueeze(0),
            layer_ids,
            cache=cache,
        )
        kv = [(keys, values) for keys, values, *_ in cache if keys is not None and keys.numel()]
        return PrefixState(len(ids), kv, hidden)

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        layer_ids: Sequence[int],
        bidirectional: bool = False,
        block_hooks: Sequence[BlockHook] = (),
        cache=None,
    ) -> dict[int, torch.Tensor]:
        with self.lock:
            return self._run_locked(
                input_ids, attention_mask, position_ids, layer_ids, bidirectional, block_hooks, cache
            )

    def _run_locked(
        self, input_ids, attention_mask, position_ids, layer_ids, bidirectional, block_hooks, cache
    ) -> dict[int, torch.Tensor]:
        device = self.device
        deepest = max(layer_ids)
        captured: dict[int, torch.Tensor] = {}
        handles = []

        def first_input(_module, args, kwargs):
            captured[0] = (args[0] if args else kwargs["hidden_states"]).clone()
            if deepest == 0:
                raise _StopForward

        def block_output(index: int):
            def hook(_module, _args, output):
                state = output[0] if isinstance(output, tuple | list) else output
                if index in layer_ids and index < self.num_layers:
                    captured[index] = state
                if index == deepest and deepest < self.num_layers:
                    raise _StopForward

            return hook

        if 0 in layer_ids:
            handles.append(self.layers[0].register_forward_pre_hook(first_input, with_kwargs=True))
        # the final layer is the model's own output: no hook, so a final-layer pass can run compiled
        for index in range(1, min(deepest, self.num_layers - 1) + 1):
            if index in layer_ids or index == deepest:
                handles.append(self.layers[index - 1].register_forward_hook(block_output(index)))
        for block, hook in block_hooks:
            handles.append(self.layers[block].register_forward_pre_hook(hook, with_kwargs=True))

        if self.is_decoder and cache is None and not bidirectional and _right_padded(attention_mask):
            # under causal attention a real token never sees the padding after it, so the mask adds nothing; without
            # one, SDPA runs its causal kernel instead of reading a materialised (rows × L × L) mask
            attention_mask = None
        kwargs = {"input_ids": input_ids.to(device)}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(device)
        if self.is_decoder:
            kwargs.update(position_ids=position_ids.to(device), use_cache=cache is not None)
            if cache is not None:
                kwargs["past_key_values"] = cache
        try:
            with self.attention(bidirectional):
                plain = not handles and cache is None and not bidirectional and not torch.is_grad_enabled()
                compiled = self._compiled_model() if plain else None
                base = compiled if compiled is not None else self.base
                output = base(**kwargs)
            if deepest == self.num_layers:
                captured[self.num_layers] = output.last_hidden_state
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return {index: captured[index] for index in layer_ids}


def _right_padded(attention_mask: torch.Tensor) -> bool:
    """Every row is its tokens then only padding (or no padding at all)."""
    return attention_mask.shape[1] < 2 or bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def merge_adapter(model: nn.Module, adapter_dir: str) -> nn.Module:
    """Apply a saved peft (LoRA) adapter and merge it into the weights: no inference overhead."""
    from pathlib import Path

    from peft import PeftModel

    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise RecipeError(f"adapter not found: {adapter_dir} has no adapter_config.json")
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=False).merge_and_unload().eval()
