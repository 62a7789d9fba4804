"""LLM2Vec's first step: masked next-token prediction with bidirectional attention.

Masking follows BERT (of the chosen tokens 80 % become the mask token, 10 % a random token, 10 % stay); a
decoder without a mask token uses ``_`` as LLM2Vec does for Llama and Mistral.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from llembed.training.losses.mntp import IGNORE, mntp_loss


def mask_id(tokenizer) -> int:
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id
    ids = tokenizer("_", add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else tokenizer.unk_token_id or 0


def mask_tokens(
    input_ids: torch.Tensor, maskable: torch.Tensor, probability: float, mask_token: int, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked ids, labels): ``maskable`` marks real, non-special tokens; every row gets at least one mask.

    The first token is never chosen: nothing precedes it to predict it from."""
    maskable = maskable.clone()
    maskable[:, 0] = False
    chosen = (torch.rand(input_ids.shape) < probability) & maskable
    for row in torch.nonzero(~chosen.any(dim=1) & maskable.any(dim=1)).flatten().tolist():
        candidates = torch.nonzero(maskable[row]).flatten()
        chosen[row, candidates[torch.randint(len(candidates), (1,))]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape)
    masked = input_ids.clone()
    masked[chosen & (draw < 0.8)] = mask_token
    random_slots = chosen & (draw >= 0.8) & (draw < 0.9)
    masked[random_slots] = torch.randint(vocab_size, (int(random_slots.sum()),))
    return masked, labels


def mntp_step(embedder, sentences: Sequence[str], config, world) -> float:
    """Mask, predict with bidirectional attention, backpropagate; chunks (``chunk_size``) accumulate gradients
    weighted by their share of masked tokens, so the result equals one pass over the batch."""
    backbone = embedder.backbone
    tokenizer = backbone.tokenizer
    encoded = tokenizer(
        list(sentences),
        padding=True,
        truncation=True,
        max_length=config.max_length,
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    maskable = encoded["attention_mask"].bool() & ~encoded["special_tokens_mask"].bool()
    vocab = backbone.lm_head().weight.shape[0]
    masked, labels = mask_tokens(encoded["input_ids"], maskable, config.mask_probability, mask_id(tokenizer), vocab)
    total = max(int((labels[:, 1:] != IGNORE).sum()), 1)
    size = config.chunk_size or len(sentences)
    loss_sum = 0.0
    for start in range(0, len(sentences), size):
        rows = slice(start, start + size)
        chunk_labels = labels[rows]
        count = int((chunk_labels[:, 1:] != IGNORE).sum())
        if count == 0:
            continue
        with backbone.attention(bidirectional=True):
            logits = backbone.model(
                input_ids=masked[rows].to(backbone.device),
                attention_mask=encoded["attention_mask"][rows].to(backbone.device),
            ).logits
        loss = mntp_loss(logits, chunk_labels.to(logits.device)) * (count / total) / world.size
        loss.backward()
        loss_sum += float(loss.detach()) * world.size
    return loss_sum
