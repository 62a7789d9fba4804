"""Reranker distillation from teacher scores: KL divergence between the teacher's and the reranker's softmax over
each query's own candidates (positive + negatives), as FlagEmbedding distils its rerankers.

The reranker's scores are its ``logit(yes) - logit(no)``, already on a logit scale: no student temperature. The
teacher's (e.g. all-MiniLM-L6-v2 cosines, or a bigger cross-encoder's logits) are divided by
``teacher_temperature`` first, which sets how peaked the target is (0.05 suits cosines).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


@dataclass
class RerankDistillationLoss:
    teacher_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.teacher_temperature <= 0:
            raise ValueError(f"teacher_temperature must be positive, not {self.teacher_temperature}")

    def __call__(self, scores: torch.Tensor, teacher_scores: torch.Tensor) -> torch.Tensor:
        """``scores`` and ``teacher_scores``: ``(queries, 1 + negatives)`` in the same candidate order."""
        if scores.shape != teacher_scores.shape:
            raise ValueError(f"{tuple(teacher_scores.shape)} teacher scores for {tuple(scores.shape)} reranker scores")
        teacher = F.softmax(teacher_scores.to(scores) / self.teacher_temperature, dim=-1)
        return F.kl_div(F.log_softmax(scores, dim=-1), teacher, reduction="batchmean")


LOSS = LossEntry(
    "rerank-distillation",
    "rerank-distillation",
    RerankDistillationLoss,
    "KL divergence from the teacher's order over the reranked candidates",
    {"teacher_temperature": "teacher_temperature"},
    default=True,
)
