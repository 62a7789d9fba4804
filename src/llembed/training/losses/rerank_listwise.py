"""Listwise reranking loss: a softmax over one query's documents, the positive first (cross-entropy on its index).

Scores are a reranker's ``logit(yes) - logit(no)``; training pushes the positive's above its hard negatives'
(FlagEmbedding's decoder-only reranker loss, with mined negatives as the group).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


@dataclass
class ListwiseRerankLoss:
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores``: ``(queries, 1 + negatives)``, column 0 the positive; the mean over queries."""
        if scores.dim() != 2 or scores.shape[1] < 2:
            raise ValueError(f"listwise scores must be (queries, 1 + negatives ≥ 2 columns), not {tuple(scores.shape)}")
        target = torch.zeros(len(scores), dtype=torch.long, device=scores.device)
        return F.cross_entropy(scores / self.temperature, target)


LOSS = LossEntry(
    "listwise",
    "rerank",
    ListwiseRerankLoss,
    "softmax cross-entropy over each query's positive and its negatives",
    default=True,
)
