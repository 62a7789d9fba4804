"""Sparse lexical vectors from the LM head (PromptReps, Zhuang et al., 2024, arXiv:2404.18424).

At the pooled position the LM head's logits over the vocabulary become term weights
``log(1 + relu(logits))``; only the ``top_k`` largest are kept. States below the final layer go through the
final norm first (the logit lens); an averaged set of layers averages the normed states, so the final layer's
own (already normed) state is never normed twice and the others never skip the norm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse
import torch

if TYPE_CHECKING:
    from llembed.backbone import Backbone


@torch.inference_mode()
def lm_logits(
    backbone: Backbone, pooled_by_layer: Mapping[int, torch.Tensor], rows: Sequence[int] | None = None
) -> torch.Tensor:
    """LM-head logits (float32, CPU) of the mean over layers of pooled states, each put through the logit lens.

    ``rows``: only these vocabulary entries (a reranker's two answer words), in that order."""
    return lens_logits(backbone, pooled_by_layer, rows).float().cpu()


def lens_logits(
    backbone: Backbone, pooled_by_layer: Mapping[int, torch.Tensor], rows: Sequence[int] | None = None
) -> torch.Tensor:
    """:func:`lm_logits` on the model's device, keeping the autograd graph (training); in the model's dtype over
    the whole vocabulary, in float32 for a few ``rows``."""
    norm = backbone.final_norm()
    lensed = []
    for layer, pooled in pooled_by_layer.items():
        states = pooled.to(backbone.device, backbone.dtype)
        if layer < backbone.num_layers and norm is not None:
            states = norm(states)
        lensed.append(states.float())
    mean = torch.stack(lensed).mean(dim=0)
    head = backbone.lm_head()
    if rows is None:
        return head(mean.to(backbone.dtype))
    # a reranker's few answer rows: the product in float32, since bf16 logits near 20 move in steps of 0.125 and
    # unrelated passages would tie
    index = torch.tensor(list(rows), device=head.weight.device)
    bias = None if getattr(head, "bias", None) is None else head.bias[index].float()
    return torch.nn.functional.linear(mean, head.weight[index].float(), bias)


def lexical_weights(
    logits: torch.Tensor, top_k: int | None, vocab_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, token ids) of each row's ``top_k`` largest ``log1p(relu(logits))``; zero weights dropped later.

    LM-head rows from ``vocab_size`` on (padding of the embedding matrix: no token has them) get no weight."""
    weights = torch.log1p(torch.relu(logits.float()))
    if vocab_size is not None and vocab_size < weights.shape[-1]:
        weights[..., vocab_size:] = 0
    k = weights.shape[-1] if top_k is None else min(top_k, weights.shape[-1])
    values, ids = weights.topk(k, dim=-1)
    return values, ids


def to_csr(values: torch.Tensor, ids: torch.Tensor, vocab_size: int) -> scipy.sparse.csr_matrix:
    keep = values > 0
    counts = keep.sum(dim=1).numpy()
    indptr = np.concatenate([[0], np.cumsum(counts)])
    matrix = scipy.sparse.csr_matrix(
        (values[keep].numpy().astype(np.float32), ids[keep].numpy(), indptr), shape=(len(values), vocab_size)
    )
    matrix.sort_indices()
    return matrix


def to_token_dicts(matrix: scipy.sparse.csr_matrix, id_to_token: Sequence[str] | None = None) -> list[dict]:
    """One ``{token: weight}`` per row (token strings when ``id_to_token`` is given, else ids)."""
    rows = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        pairs = sorted(zip(matrix.indices[start:end], matrix.data[start:end], strict=False), key=lambda p: -p[1])
        rows.append({(id_to_token[i] if id_to_token else int(i)): float(w) for i, w in pairs})
    return rows
