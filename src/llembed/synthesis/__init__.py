"""Synthetic training data written by an LLM: the E5-Mistral and Gecko recipes, local or endpoint generators."""

from llembed.extras import require

require("synth", "synthetic data")

from llembed.generation import GenerationSettings, LocalGenerator, OpenAIGenerator, make_generator  # noqa: E402
from llembed.synthesis.e5 import E5Options  # noqa: E402
from llembed.synthesis.gecko import GeckoOptions  # noqa: E402
from llembed.synthesis.pipeline import SynthesisResult, run_e5, run_gecko  # noqa: E402

__all__ = [
    "E5Options",
    "GeckoOptions",
    "GenerationSettings",
    "LocalGenerator",
    "OpenAIGenerator",
    "SynthesisResult",
    "make_generator",
    "run_e5",
    "run_gecko",
]
