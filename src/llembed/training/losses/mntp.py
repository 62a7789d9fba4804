"""Masked next-token prediction (LLM2Vec, BehnamGhader et al., 2024, arXiv:2404.05961).

With bidirectional attention a masked token at position ``i`` is predicted from the logits at ``i - 1``, the
position a causal LM already uses to predict token ``i``, so the LM head keeps its meaning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def mntp_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``logits`` (B, T, V); ``labels`` (B, T): the original id at masked positions, ``IGNORE`` elsewhere."""
    shifted_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shifted_labels = labels[:, 1:].reshape(-1)
    if not bool((shifted_labels != IGNORE).any()):
        return shifted_logits.sum() * 0.0  # no masked token in this batch: a zero that keeps the graph
    return F.cross_entropy(shifted_logits, shifted_labels, ignore_index=IGNORE)
