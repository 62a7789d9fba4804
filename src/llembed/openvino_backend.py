"""The OpenVINO backend: the recipe's forward pass compiled to an OpenVINO graph for the CPU.

``backend="openvino"`` exports the transformer once per pooled layer and attention mode — the stack cut right
after that layer (its final norm only when it is the last), causal or bidirectional attention traced into the
graph's mask — and runs plain passes through OpenVINO's CPU plugin. Precision follows the recipe's ``dtype``:

- ``auto``: OpenVINO's own default, bf16 products where the CPU has native bf16 (AMX / AVX-512-BF16), else fp32;
- ``float32`` / ``bfloat16``: that inference precision;
- ``int8``: static int8 (NNCF post-training quantization, calibrated on the bundled calibration sentences, with
  SmoothQuant-style smoothing), admitted only if it holds the quality gate: every held-aside sentence's pooled
  vector (last token and mean) within cosine :data:`INT8_GATE` of torch's float32 vector.

Graphs are cached on disk per weights, layer, attention mode and precision (written atomically). Torch stays
the reference and runs what a graph does not express: averages of several layers, the embedding layer alone, a
strategy's block hooks (Token Prepending), gradients (training), sliding-window attention (Gemma 3), and any
pass after the weights changed. Pooling runs on the graph's hidden states, exactly as for torch (under 1 % of
a pass), so one graph serves every pooling of its layer. A shared prompt prefix is run inside each pass, not
cached: a graph takes no keys/values from outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llembed.backbone import Backbone, cpu_name
from llembed.errors import RecipeError
from llembed.extras import require
from llembed.tokenization import TokenBatch, plain_batches

logger = logging.getLogger(__name__)

GRAPH_VERSION = "v3"
"""Part of a cached graph's folder name: bump it when the export changes."""
INT8_GATE = 0.985
"""int8 graphs must keep every held-aside pooled vector within this cosine of torch float32's (SmolLM2's: 0.989;
``benchmarks/bench_backends.py`` reports what it costs on STS-B)."""
GATE_SENTENCES = 64
"""The last calibration sentences, held out of int8 calibration to check the gate."""
PRECISIONS = {"auto": None, "float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": None}
"""Recipe dtype → OpenVINO ``INFERENCE_PRECISION_HINT`` (None: the plugin's default for this CPU)."""


INT8_SMOOTHING_ALPHA = 0.5
"""SmoothQuant's migration strength for int8 graphs. On SmolLM2 (plain text, mean pooling, STS-B test, fp32
37.15): 0.75 gave 36.55, 0.5 gave 37.39 at the same speed; 0.75 with the last two blocks in float, 36.55."""


def float_matmul_patterns() -> list[str]:
    """Graph node names whose products stay float in an int8 graph: the MLP's output projection (its input, the
    gated activation, carries the outliers that cost the most: held-aside minimum cosine on SmolLM2 0.972 with
    it in int8, 0.989 without)."""
    from llembed.quantization import MLP_OUTPUT

    return [rf".*{name}/.*" for name in MLP_OUTPUT]


class GateMissed(RecipeError):
    """An int8 graph's held-aside sentences fell below :data:`INT8_GATE`."""


class LayerCut(nn.Module):
    """The transformer up to block ``layer``, inside :func:`cut_at`: what the graph computes."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.base = backbone.base
        self.is_decoder = backbone.is_decoder

    def forward(self, input_ids, attention_mask, position_ids=None):
        if not self.is_decoder:  # BERT-like encoders number positions themselves
            return self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        kwargs = {"position_ids": position_ids, "use_cache": False}
        return self.base(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


@contextlib.contextmanager
def cut_at(backbone: Backbone, layer: int) -> Iterator[None]:
    """The model's block list holds only its first ``layer`` blocks, and below the last one the final norm is an
    identity: the model's output is then hidden state ``layer``, and the export never traces the blocks above."""
    layers = backbone.layers
    parent = next(m for m in backbone.base.modules() if any(c is layers for c in m.children()))
    name = next(n for n, c in parent.named_children() if c is layers)
    norm = backbone.final_norm()
    norm_name = next((n for n, c in backbone.base.named_children() if c is norm), None)
    setattr(parent, name, nn.ModuleList(list(layers)[:layer]))
    if norm_name is not None and layer < backbone.num_layers:
        setattr(backbone.base, norm_name, nn.Identity())
    try:
        yield
    finally:
        setattr(parent, name, layers)
        if norm_name is not None:
            setattr(backbone.base, norm_name, norm)


class OpenVINOBackbone:
    """A :class:`llembed.backbone.Backbone` whose plain passes run as compiled OpenVINO graphs.

    Everything else (tokenizer, LM head, hooks, training, the reranker's passes) is the wrapped torch backbone's.
    """

    prefix_cache = None  # a graph runs the whole prompt: the loop caches no prefix for it

    def __init__(
        self, torch_backbone: Backbone, precision: str = "auto", threads: int | None = None, gate_miss: str = "raise"
    ):
        """``gate_miss``: what an int8 graph below the quality gate does — ``raise`` (a chosen backend) or
        ``torch`` (``backend: auto``, which measured the gate on plain sentences: the recipe's prompted calibration
        may land elsewhere, and then torch runs those passes)."""
        require("openvino", "backend openvino")
        if precision not in PRECISIONS:
            raise RecipeError(f"backend openvino runs dtype auto, float32, bfloat16, float16 or int8, not {precision}")
        if torch_backbone.device.type != "cpu":
            raise RecipeError("backend openvino is the CPU path: load on the CPU, or use backend torch")
        if torch_backbone.quantization is not None:
            raise RecipeError("backend openvino quantizes its own graph: load the torch model in float32")
        self.torch = torch_backbone
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.gate_miss = gate_miss
        self.graphs: dict[tuple[int, bool, str], Any] = {}
        self.calibration: Callable[[Sequence[str]], list[TokenBatch]] = self._plain_batches
        self.calibration_key = "plain"
        self._exported_for = torch_backbone.weights_version()
        self._graph_lock = threading.Lock()

    def __getattr__(self, name: str):
        # only reached for what this class does not define: the torch backbone's structure and state
        if "torch" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["torch"], name)

    @property
    def dtype_name(self) -> str:
        return f"openvino-{self.precision}" if self.precision != "auto" else f"openvino-{self._default_precision()}"

    @property
    def compiled(self) -> None:
        return None

    def compile(self) -> None:
        raise RecipeError("backend openvino is already a compiled graph: torch.compile is for backend torch")

    def calibrate_with(self, batches: Callable[[Sequence[str]], list[TokenBatch]], key: str) -> None:
        """How int8 calibration and its gate turn sentences into batches: the forward loop hands over its recipe's
        prompting, so the int8 ranges are those of prompted text (``key`` names the prompt in the cache)."""
        self.calibration, self.calibration_key = batches, key

    # ------------------------------------------------------------------ what a graph runs
    def expresses(self, layer_ids: Sequence[int], bidirectional: bool, block_hooks: Sequence, prefix, grad) -> bool:
        """Whether a pass can run as a graph (else torch runs it; see the module's docstring)."""
        return (
            len(layer_ids) == 1
            and layer_ids[0] > 0
            and not block_hooks
            and prefix is None
            and not grad
            and not (self.torch.has_sliding_window and self.torch.is_decoder)
            and (bidirectional is False or self.torch.is_decoder)
            and self.torch.weights_version() == self._exported_for
        )

    def hidden_states(
        self,
        batch: TokenBatch,
        layer_ids: Sequence[int],
        bidirectional: bool = False,
        block_hooks: Sequence = (),
        prefix: Any = None,
        grad: bool = False,
    ) -> dict[int, torch.Tensor]:
        expressed = self.expresses(layer_ids, bidirectional, block_hooks, prefix, grad)
        graph = self.graph(layer_ids[0], bidirectional) if expressed else None
        if graph is None:  # torch's pass, or an int8 graph below the gate under backend auto
            return self.torch.hidden_states(batch, layer_ids, bidirectional, block_hooks, prefix, grad)
        with self.torch.lock:
            output = graph(self._graph_inputs(batch))[0]
        return {layer_ids[0]: torch.from_numpy(np.array(output, dtype=np.float32, copy=True))}

    # ------------------------------------------------------------------ graphs
    def graph(self, layer: int, bidirectional: bool):
        """The compiled graph for one layer and attention mode: from this process, the disk cache, or exported;
        None for an int8 graph below the gate when ``gate_miss`` is ``torch``."""
        key = (layer, bidirectional, self.calibration_key if self.precision == "int8" else "")
        with self._graph_lock:
            if key not in self.graphs:
                try:
                    self.graphs[key] = self._compile(self._graph_file(layer, bidirectional))
                except GateMissed as exc:
                    if self.gate_miss == "raise":
                        raise
                    logger.warning("%s; torch runs these passes", exc)
                    self.graphs[key] = None
            return self.graphs[key]

    def _compile(self, xml: Path):
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        hint = PRECISIONS[self.precision]
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint
        return ov.Core().compile_model(str(xml), "CPU", config)

    def _default_precision(self) -> str:
        import openvino as ov

        return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()

    def _graph_file(self, layer: int, bidirectional: bool) -> Path:
        from llembed.model_sources import cache_root
        from llembed.quantization import weights_fingerprint

        stored = "float"
        if self.precision == "int8":
            stored = "int8-" + hashlib.sha256(self.calibration_key.encode()).hexdigest()[:12]
        attention = "bidirectional" if bidirectional else "causal"
        name = f"{weights_fingerprint(self.torch.model)}-L{layer}-{attention}-{stored}-{GRAPH_VERSION}"
        folder = cache_root() / "openvino" / name
        if not (folder / "model.xml").is_file():
            self._export(folder, layer, bidirectional)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        gate = meta.get("gate_min_cosine")
        if gate is not None and gate < INT8_GATE:
            raise GateMissed(
                f"backend openvino int8 misses the quality gate on {self.torch.name}: held-aside sentences' minimum "
                f"cosine to float32 is {gate:.4f} < {INT8_GATE}; use dtype auto or float32 (or backend auto)"
            )
        return folder / "model.xml"

    def _export(self, folder: Path, layer: int, bidirectional: bool) -> None:
        """Trace, convert (and for int8 quantize and gate) into a temporary folder, then move it into place."""
        import openvino as ov

        logger.info("openvino: exporting %s up to layer %d (once; cached in %s)", self.torch.name, layer, folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        model = self._convert(layer, bidirectional)
        meta: dict[str, Any] = {"model": self.torch.name, "layer": layer, "bidirectional": bidirectional,
                                "openvino": ov.__version__, "cpu": cpu_name()}  # fmt: skip
        if self.precision == "int8":
            model, meta["gate_min_cosine"] = self._quantize(model, layer, bidirectional)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
        try:
            ov.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
            (staging / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            try:
                os.replace(staging, folder)
            except OSError:  # another process finished first: keep theirs
                if not (folder / "model.xml").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _convert(self, layer: int, bidirectional: bool):
        import openvino as ov

        ids = torch.ones(2, 9, dtype=torch.long)
        example = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if self.torch.is_decoder:
            example["position_ids"] = torch.arange(9).repeat(2, 1)
        spec = [(name, [-1, -1], ov.Type.i64) for name in example]
        model = self.torch.model
        saved = model.config._attn_implementation
        # eager attention masks with the dtype's minimum, not -inf: a left-padded row's padding (which attends to
        # nothing) stays finite instead of turning NaN and reaching real tokens through 0 × NaN
        model.set_attn_implementation("eager")
        try:
            with self.torch.lock, cut_at(self.torch, layer), self.torch.attention(bidirectional):
                return ov.convert_model(LayerCut(self.torch).eval(), example_input=example, input=spec)
        finally:
            model.set_attn_implementation(saved)

    def _quantize(self, model, layer: int, bidirectional: bool) -> tuple[Any, float]:
        """Static int8 with NNCF over the calibration sentences; returns the model and its gate's cosine."""
        import nncf
        import openvino as ov

        from llembed.quantization import calibration_texts

        texts = calibration_texts()
        calibration, held_aside = texts[:-GATE_SENTENCES], texts[-GATE_SENTENCES:]
        batches = self.calibration(calibration)
        quantized = nncf.quantize(
            model,
            nncf.Dataset(batches, self._graph_inputs),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
            ignored_scope=nncf.IgnoredScope(patterns=float_matmul_patterns(), validate=False),
            advanced_parameters=nncf.AdvancedQuantizationParameters(
                smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=INT8_SMOOTHING_ALPHA)
            ),
        )
        compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        worst = 1.0
        for batch in self.calibration(held_aside):
            fast = torch.from_numpy(np.array(compiled(self._graph_inputs(batch))[0]))
            reference = self.torch.hidden_states(batch, [layer], bidirectional)[layer]
            worst = min(worst, _pooled_min_cosine(fast, reference, batch.attention_mask))
        logger.info("openvino int8 gate on %s: minimum cosine %.4f (needs %.3f)", self.torch.name, worst, INT8_GATE)
        return quantized, worst

    def _plain_batches(self, texts: Sequence[str]) -> list[TokenBatch]:
        """Sentences as they are (a backbone used without a forward loop)."""
        return plain_batches(self.torch.tokenizer, texts)

    def _graph_inputs(self, batch: TokenBatch) -> dict[str, np.ndarray]:
        inputs = {"input_ids": batch.input_ids.numpy(), "attention_mask": batch.attention_mask.numpy()}
        if self.torch.is_decoder:
            inputs["position_ids"] = batch.position_ids.numpy()
        return inputs


def _pooled_min_cosine(fast: torch.Tensor, reference: torch.Tensor, attention_mask: torch.Tensor) -> float:
    """The smaller of last-token and mean pooling's minimum cosine between two batches of hidden states."""
    from llembed.pooling import pool

    worst = 1.0
    for pooling in ("last", "mean"):
        a = pool(pooling, fast.float(), attention_mask, None)
        b = pool(pooling, reference.float(), attention_mask, None)
        worst = min(worst, float(torch.nn.functional.cosine_similarity(a, b, dim=1).min()))
    return worst
