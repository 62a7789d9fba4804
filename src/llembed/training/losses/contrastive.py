"""InfoNCE with in-batch and hard negatives, optionally symmetric and over Matryoshka dimensions.

Query ``i``'s positive is candidate ``i``; every other candidate (the other queries' positives and all hard
negatives) is a negative for it. This is sentence-transformers' MultipleNegativesRankingLoss, written on
plain tensors so it runs on gathered or cached representations (GradCache, several processes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


def _normalized(vectors: torch.Tensor, dim: int | None) -> torch.Tensor:
    return F.normalize(vectors if dim is None else vectors[:, :dim], dim=-1)


@dataclass
class InfoNCELoss:
    temperature: float = 0.05
    symmetric: bool = False
    """Also classify each positive against all queries (positive → query direction)."""
    matryoshka_dims: Sequence[int] | None = None
    """Average the loss over these leading-dimension cuts (plus nothing else: include the full width)."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")

    def __call__(self, queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None = None):
        dims = list(self.matryoshka_dims) if self.matryoshka_dims else [None]
        return torch.stack([self._one(queries, positives, negatives, dim) for dim in dims]).mean()

    def _one(self, queries, positives, negatives, dim: int | None) -> torch.Tensor:
        q = _normalized(queries, dim)
        p = _normalized(positives, dim)
        candidates = p if negatives is None or len(negatives) == 0 else torch.cat([p, _normalized(negatives, dim)])
        labels = torch.arange(len(q), device=q.device)
        loss = F.cross_entropy(q @ candidates.T / self.temperature, labels)
        if self.symmetric:
            loss = (loss + F.cross_entropy(p @ q.T / self.temperature, labels)) / 2
        return loss


LOSS = LossEntry(
    "infonce",
    "pairs",
    InfoNCELoss,
    "InfoNCE over in-batch and hard negatives (MultipleNegativesRankingLoss), optionally symmetric / Matryoshka",
    {"temperature": "temperature", "symmetric": "symmetric", "matryoshka_dims": "matryoshka_dims"},
    default=True,
)
