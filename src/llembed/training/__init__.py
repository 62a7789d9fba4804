"""Data-centric tuning: contrastive LoRA, GradCache, multi-task instructions, distillation, LLM2Vec.

``llembed train CONFIG.yaml`` or :func:`train`; see :class:`TrainConfig` for every option.
"""

from llembed.training.config import TrainConfig
from llembed.training.data import TrainExample, load_examples
from llembed.training.trainer import Trainer, TrainResult, train

__all__ = ["TrainConfig", "TrainExample", "TrainResult", "Trainer", "load_examples", "train"]
