"""Distillation from teacher scores: KL divergence over each query's own candidates (positive + negatives).

The teacher (a cross-encoder, or any scorer) gives ``scores[i] = [s(q_i, p_i), s(q_i, n_i1), …]``; the student's
cosine scores over the same candidates are pushed towards the teacher's softmax distribution (RocketQAv2 /
the KL loss of FlagEmbedding and sentence-transformers' DistillKLDivLoss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


@dataclass
class ScoreDistillationLoss:
    temperature: float = 0.05
    """Student temperature on cosine scores."""
    teacher_temperature: float = 1.0
    """Teacher scores are divided by this before the softmax."""

    def __call__(
        self, queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, teacher_scores: torch.Tensor
    ) -> torch.Tensor:
        """``negatives``: (B·k, D), query ``i``'s are rows ``i·k … i·k+k-1``; ``teacher_scores``: (B, 1+k)."""
        batch = len(queries)
        k = teacher_scores.shape[1] - 1
        if len(negatives) != batch * k:
            raise ValueError(f"{len(negatives)} negatives for {batch} queries with {k} teacher scores each")
        q = F.normalize(queries, dim=-1)
        candidates = torch.cat(
            [F.normalize(positives, dim=-1).unsqueeze(1), F.normalize(negatives, dim=-1).view(batch, k, -1)], dim=1
        )
        student = torch.einsum("bd,bkd->bk", q, candidates) / self.temperature
        teacher = F.softmax(teacher_scores.to(student) / self.teacher_temperature, dim=-1)
        return F.kl_div(F.log_softmax(student, dim=-1), teacher, reduction="batchmean")


LOSS = LossEntry(
    "score-distillation",
    "score-distillation",
    ScoreDistillationLoss,
    "KL divergence from the teacher's softmax over each query's candidates",
    {"temperature": "temperature", "teacher_temperature": "teacher_temperature"},
    default=True,
)
