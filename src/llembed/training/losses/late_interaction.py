"""Late interaction (ColBERT's contrastive loss, as PyLate's ``Contrastive``): InfoNCE over MaxSim scores.

Texts come as token vectors, ``(n, width, d)`` with zero rows for padding (:meth:`Embedder.forward_tokens`). A
query scores a candidate by MaxSim: each query token takes its best cosine among the candidate's tokens, and
the score is their mean over the query's tokens (what :func:`llembed.multivector.maxsim` computes at search
time, so training and retrieval rank alike). Query ``i``'s positive is candidate ``i``; the other queries'
positives and every hard negative are its negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llembed.training.losses.registry import LossEntry


def maxsim_scores(queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``(n_queries, n_candidates)`` MaxSim of token-vector texts (zero rows are padding, never matched)."""
    q, c = F.normalize(queries, dim=-1), F.normalize(candidates, dim=-1)
    q_real, c_real = queries.abs().sum(-1) > 0, candidates.abs().sum(-1) > 0
    sims = torch.einsum("qid,cjd->qcij", q, c).masked_fill(~c_real[None, :, None, :], float("-inf"))
    best = sims.amax(dim=-1).masked_fill(~q_real[:, None, :], 0.0)  # (q, c, query token)
    return best.sum(-1) / q_real.sum(-1, keepdim=True).clamp(min=1)


@dataclass
class LateInteractionLoss:
    temperature: float = 0.05

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")

    def __call__(
        self, queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        candidates = positives if negatives is None or len(negatives) == 0 else torch.cat([positives, negatives])
        labels = torch.arange(len(queries), device=queries.device)
        return F.cross_entropy(maxsim_scores(queries, candidates) / self.temperature, labels)


LOSS = LossEntry(
    "late-interaction",
    "tokens",
    LateInteractionLoss,
    "InfoNCE over MaxSim scores of token vectors (ColBERT-style late interaction)",
    {"temperature": "temperature"},
    default=True,
)
