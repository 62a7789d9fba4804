"""Pointwise reranking loss: each (query, document) judged alone, binary cross-entropy of ``sigmoid(score)``
against relevant (the positive) or not (its negatives) — the loss of a CrossEncoder with one logit."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


@dataclass
class PointwiseRerankLoss:
    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores``: ``(queries, 1 + negatives)``, column 0 the positive; the mean over all pairs."""
        if scores.dim() != 2:
            raise ValueError(f"pointwise scores must be (queries, 1 + negatives), not {tuple(scores.shape)}")
        targets = torch.zeros_like(scores)
        targets[:, 0] = 1.0
        return F.binary_cross_entropy_with_logits(scores, targets)


LOSS = LossEntry("pointwise", "rerank", PointwiseRerankLoss, "binary cross-entropy per (query, passage) pair")
