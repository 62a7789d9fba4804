"""CoSENT: a ranking loss on graded pairs (STS-style ``label`` scores), from Su (2022), as in
sentence-transformers' CoSENTLoss and AnglE.

For every two pairs ``i, j`` of the batch with ``label_i > label_j``, pair ``i``'s cosine should be above pair
``j``'s: ``loss = log(1 + Σ exp(scale · (cos_j − cos_i)))``. Only the order of the labels matters, so 0–5 STS
scores, 1–5 relatedness or 0/1 labels all work; unlike InfoNCE a low-scored pair is not treated as a positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


@dataclass
class CoSENTLoss:
    scale: float = 20.0
    matryoshka_dims: Sequence[int] | None = None
    """Average the loss over these leading-dimension cuts."""

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"CoSENT scale must be positive, not {self.scale}")

    def __call__(self, first: torch.Tensor, second: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dims = list(self.matryoshka_dims) if self.matryoshka_dims else [None]
        return torch.stack([self._one(first, second, labels, dim) for dim in dims]).mean()

    def _one(self, first, second, labels, dim: int | None) -> torch.Tensor:
        if dim is not None:
            first, second = first[:, :dim], second[:, :dim]
        cosines = F.cosine_similarity(first, second, dim=-1) * self.scale
        differences = cosines[None, :] - cosines[:, None]  # [i, j] = cos_j − cos_i
        ordered = labels.to(cosines)[:, None] > labels.to(cosines)[None, :]  # label_i > label_j
        # a leading 0 is the "1 +" inside the log; pairs in the wrong order count, the rest are masked out
        terms = torch.cat([cosines.new_zeros(1), differences[ordered]])
        return torch.logsumexp(terms, dim=0)


LOSS = LossEntry(
    "cosent",
    "graded",
    CoSENTLoss,
    "CoSENT: every pair with a higher label scores above every pair with a lower one",
    {"scale": "cosent_scale", "matryoshka_dims": "matryoshka_dims"},
    default=True,
)
