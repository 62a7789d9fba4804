"""Distillation from a teacher embedder (e.g. all-MiniLM-L6-v2).

- ``similarity_mse`` (any widths): the student's query × candidate cosine matrix should equal the teacher's,
  by mean squared error — the teacher's geometry, not its coordinates, so the widths may differ.
- ``cosine`` / ``mse`` (equal widths only): each student vector should point along (cosine) or equal (mse,
  on unit vectors) the teacher's vector of the same text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry

MODES = ("similarity_mse", "cosine", "mse")


@dataclass
class EmbedderDistillationLoss:
    mode: str = "similarity_mse"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown embedder distillation mode {self.mode!r}; choose one of {', '.join(MODES)}")

    def __call__(
        self,
        student_queries: torch.Tensor,
        student_candidates: torch.Tensor,
        teacher_queries: torch.Tensor,
        teacher_candidates: torch.Tensor,
    ) -> torch.Tensor:
        sq, sc = F.normalize(student_queries, dim=-1), F.normalize(student_candidates, dim=-1)
        tq, tc = F.normalize(teacher_queries.to(sq), dim=-1), F.normalize(teacher_candidates.to(sq), dim=-1)
        if self.mode == "similarity_mse":
            return F.mse_loss(sq @ sc.T, tq @ tc.T)
        if sq.shape[1] != tq.shape[1]:
            raise ValueError(
                f"mode {self.mode!r} needs equal widths (student {sq.shape[1]}, teacher {tq.shape[1]}); "
                "use 'similarity_mse'"
            )
        student, teacher = torch.cat([sq, sc]), torch.cat([tq, tc])
        if self.mode == "cosine":
            return (1 - (student * teacher).sum(dim=-1)).mean()
        return F.mse_loss(student, teacher)


LOSS = LossEntry(
    "embedder-distillation",
    "teacher",
    EmbedderDistillationLoss,
    "match a teacher embedder's similarities (or vectors)",
    {"mode": "teacher.mode"},
    default=True,
)
