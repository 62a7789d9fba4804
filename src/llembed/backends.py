"""Which backend runs a recipe's forward pass: the one place that loads a backbone.

- a static model's folder → its token-vector table (:class:`llembed.static.StaticBackbone`);
- ``backend: torch`` → :class:`llembed.backbone.Backbone`, the reference;
- ``backend: openvino`` → :class:`llembed.openvino_backend.OpenVINOBackbone` over a float32 torch backbone;
- ``backend: auto`` → whichever of those two (OpenVINO in the recipe's precision, and in int8 when the recipe
  leaves the dtype to ``auto``) embeds fastest on this CPU among those holding the int8 quality gate. The choice
  is measured once per weights, CPU, layer and dtype (a probe of about a minute, mostly the exports) and cached.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Callable

import torch

from llembed.backbone import Backbone, cpu_name
from llembed.errors import InputError, RecipeError
from llembed.io_utils import atomic_write_text
from llembed.model_sources import ModelSource, cache_root
from llembed.openvino_backend import GRAPH_VERSION, OpenVINOBackbone
from llembed.recipe import resolve_layers
from llembed.static import StaticBackbone, is_static_folder

logger = logging.getLogger(__name__)

PROBE_SENTENCES = 96
"""Calibration sentences each candidate embeds (six batches of 16, twice; the faster round counts) when ``auto``
measures the backends."""


def load_backbone(
    source: ModelSource, recipe, device: str | None = None, threads: int | None = None, graphs: bool = True
):
    """The backbone a resolved recipe names (its dtype, adapter and backend), after setting torch's intra-op
    ``threads``. ``graphs=False``: torch whatever the recipe's backend (the reranker's passes read the LM head)."""
    if threads is not None:
        if threads <= 0:
            raise InputError(f"threads must be positive, not {threads}")
        torch.set_num_threads(threads)
    if source.gguf_file is None and is_static_folder(source.path):
        if recipe.adapter is not None or recipe.dtype not in ("auto", "float32"):
            raise RecipeError("a static model is a float32 table: no adapter, no other dtype")
        return StaticBackbone.load(source.path, source.name)
    backend = recipe.backend if graphs else "torch"
    if backend == "auto":  # a graph only where OpenVINO can run one: on the CPU, with the extra installed
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if target.type != "cpu" or importlib.util.find_spec("openvino") is None:
            backend = "torch"
    if backend == "torch":
        return Backbone.load(source, dtype=recipe.dtype, device=device, adapter=recipe.adapter)
    reference = Backbone.load(source, dtype="float32", device=device, adapter=recipe.adapter)
    if backend == "openvino":
        return OpenVINOBackbone(reference, recipe.dtype, threads)
    return choose(reference, recipe, lambda: Backbone.load(source, recipe.dtype, device, recipe.adapter), threads)


def choose(reference: Backbone, recipe, load_torch: Callable[[], Backbone], threads: int | None = None):
    """``backend: auto``: the fastest candidate on this CPU (measured once, cached), loaded. ``reference``: the
    float32 torch backbone the graphs are exported from; ``load_torch``: torch in the recipe's dtype."""
    layers = resolve_layers(recipe.layer, reference.num_layers)
    candidates: dict[str, Callable[[], object]] = {
        "torch": lambda: reference if recipe.dtype == "float32" else load_torch(),
        "openvino": lambda: OpenVINOBackbone(reference, recipe.dtype, threads),
    }
    if recipe.dtype == "auto":
        candidates["openvino-int8"] = lambda: OpenVINOBackbone(reference, "int8", threads, gate_miss="torch")
    from llembed.quantization import weights_fingerprint

    cpu = "".join(c if c.isalnum() else "-" for c in cpu_name())[:60]
    name = f"{weights_fingerprint(reference.model)}-{cpu}-L{'_'.join(map(str, layers))}-"
    version = f"{int(recipe.bidirectional)}-{recipe.dtype}-{GRAPH_VERSION}"  # a new export measures again
    record = cache_root() / "backend-choice" / f"{name}{version}.json"
    if record.is_file():
        timings = json.loads(record.read_text(encoding="utf-8"))["seconds"]
    else:
        timings = {}
        for label in candidates:
            try:
                timings[label] = _probe(candidates[label](), layers, recipe.bidirectional)
            except RecipeError as exc:  # an int8 graph below the quality gate, a layer set no graph runs
                logger.info("backend auto: %s left out (%s)", label, exc)
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"cpu": cpu_name(), "seconds": timings}, indent=1))
    best = min(timings, key=timings.get)
    logger.info("backend auto on %s: %s (%s)", cpu_name(), best, ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()))
    return candidates[best]()


def _probe(backbone, layers: list[int], bidirectional: bool) -> float:
    """Seconds to embed the probe sentences (after one warm-up batch); RecipeError when no graph runs them."""
    from llembed.quantization import calibration_texts
    from llembed.tokenization import plain_batches

    if isinstance(backbone, OpenVINOBackbone) and not backbone.expresses(layers, bidirectional, (), None, False):
        raise RecipeError(f"no graph for layers {layers}")
    batches = plain_batches(backbone.tokenizer, calibration_texts()[:PROBE_SENTENCES])
    # exported (and an int8 graph gated) before the clock starts
    if isinstance(backbone, OpenVINOBackbone) and backbone.graph(layers[0], bidirectional) is None:
        raise RecipeError("its int8 graph misses the quality gate")
    backbone.hidden_states(batches[0], layers, bidirectional)
    rounds = []
    for _ in range(2):
        start = time.perf_counter()
        for batch in batches:
            backbone.hidden_states(batch, layers, bidirectional)
        rounds.append(time.perf_counter() - start)
    return min(rounds)
