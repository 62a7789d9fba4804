"""Data-centric tuning: contrastive LoRA, GradCache, multi-task instructions, distillation, LLM2Vec.

``llembed train CONFIG.yaml`` or :func:`train`; see :class:`TrainConfig` for every option.
"""

from llembed.extras import require

require("train", "training")

from llembed.training.config import TrainConfig  # noqa: E402
from llembed.training.data import TrainExample, load_examples  # noqa: E402
from llembed.training.trainer import Trainer, TrainResult, train  # noqa: E402

__all__ = ["TrainConfig", "TrainExample", "TrainResult", "Trainer", "load_examples", "train"]
