"""Prompted text → token ids, with the exact token positions of the user's text, and padded batches.

The whole prompt is tokenized as one string (the model sees the tokens it would see in the wild); the
tokens whose character offsets overlap the user text's spans are "the text". Special tokens the tokenizer
adds (BOS, CLS/SEP) are found once by comparing an encoding with and without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llembed.errors import InputError
from llembed.prompt_template import PromptTemplate, Rendered


@dataclass
class TokenizedText:
    ids: list[int]
    text_mask: list[bool]
    pst_index: int | None = None
    truncated: bool = False
    """The text was cut to fit ``max_length``."""
    offsets: list[tuple[int, int]] | None = None
    """Each token's character span in the rendered prompt ((0, 0) for added tokens); kept on request."""


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T) 1 = token, 0 = pad
    position_ids: torch.Tensor  # (B, T) positions counted over real tokens, whatever the padding side
    text_mask: torch.Tensor  # (B, T) bool, the user text's tokens
    pst_index: torch.Tensor | None  # (B,) position of the Token Prepending placeholder

    @property
    def last_index(self) -> torch.Tensor:
        """Index of the last real token of each row, under left or right padding."""
        positions = torch.arange(self.attention_mask.shape[1], device=self.attention_mask.device)
        return (positions * self.attention_mask).argmax(dim=1)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


class PromptTokenizer:
    """Tokenizes rendered prompts and knows which tokens are the user's text."""

    def __init__(
        self,
        tokenizer,
        max_length: int,
        truncation: bool = False,
        append_eos: bool = False,
        placeholder_id: int | None = None,
    ) -> None:
        """``placeholder_id``: the token put at a template's ``{pst}`` (default: UNK, else EOS, else PAD)."""
        if not getattr(tokenizer, "is_fast", False):
            raise InputError("llembed needs a fast (Rust) tokenizer: it maps tokens to characters via offsets")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.prefix_ids_special, self.suffix_ids = _special_wrapping(tokenizer)
        self.eos_ids: list[int] = []
        if append_eos:
            if tokenizer.eos_token_id is None:
                raise InputError("pooling 'eos' needs a tokenizer with an EOS token")
            if not self.suffix_ids or self.suffix_ids[-1] != tokenizer.eos_token_id:
                self.eos_ids = [tokenizer.eos_token_id]
        self.placeholder_id = _placeholder_id(tokenizer) if placeholder_id is None else placeholder_id
        # an empty text under a plain prompt, with a tokenizer that adds nothing, would give no token at all
        self.empty_ids = [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id]

    @property
    def num_special(self) -> int:
        return len(self.prefix_ids_special) + len(self.suffix_ids) + len(self.eos_ids)

    def tokenize(self, rendered: Sequence[Rendered], offsets: bool = False) -> list[TokenizedText]:
        """Tokenize rendered prompts; a prompt split by a placeholder is tokenized as two chunks.

        ``offsets``: keep each token's character span in the rendered string (late chunking finds chunks by it).
        """
        chunks: list[str] = []
        for item in rendered:
            if item.pst_at is None:
                chunks.append(item.string)
            else:
                chunks += [item.string[: item.pst_at], item.string[item.pst_at :]]
        if not chunks:
            return []
        encoded = self.tokenizer(chunks, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        chunk_index = 0
        for item in rendered:
            ids: list[int] = list(self.prefix_ids_special)
            mask = [False] * len(ids)
            spans: list[tuple[int, int]] = [(0, 0)] * len(ids)
            pst_index = None
            pieces = 1 if item.pst_at is None else 2
            start = 0
            for piece in range(pieces):
                piece_ids = encoded["input_ids"][chunk_index]
                piece_offsets = encoded["offset_mapping"][chunk_index]
                chunk_index += 1
                if piece == 1:
                    pst_index = len(ids)
                    ids.append(self.placeholder_id)
                    mask.append(False)
                    spans.append((item.pst_at, item.pst_at))
                    start = item.pst_at
                ids += piece_ids
                mask += [_in_spans(start + s, start + e, item.pooled_spans) for s, e in piece_offsets]
                if offsets:
                    spans += [(start + s, start + e) for s, e in piece_offsets]
            ids += self.suffix_ids + self.eos_ids
            mask += [False] * (len(self.suffix_ids) + len(self.eos_ids))
            spans += [(len(item.string), len(item.string))] * (len(self.suffix_ids) + len(self.eos_ids))
            if not ids:
                ids, mask, spans = list(self.empty_ids), [False], [(0, 0)]
            out.append(TokenizedText(ids, mask, pst_index, offsets=spans if offsets else None))
        return out

    def prefix_ids(self, template: PromptTemplate, task: str | None = None) -> list[int]:
        """Token ids of the template's literal start (before the first text or placeholder), specials included."""
        sentinel = "\x00"
        rendered = template.render(sentinel, task)
        end = rendered.string.index(sentinel)
        if rendered.pst_at is not None:
            end = min(end, rendered.pst_at)
        head = rendered.string[:end]
        ids = self.tokenizer(head, add_special_tokens=False)["input_ids"] if head else []
        return list(self.prefix_ids_special) + ids

    def tokenize_texts(
        self,
        texts: Sequence[str],
        template: PromptTemplate,
        task: str | None = None,
        truncation: bool | None = None,
        offsets: bool = False,
    ) -> list[TokenizedText]:
        """Render and tokenize; texts over ``max_length`` are cut (``truncation``, default the tokenizer's own
        setting) or rejected. ``offsets`` as for :meth:`tokenize`."""
        truncation = self.truncation if truncation is None else truncation
        tokenized = self.tokenize([template.render(text, task) for text in texts], offsets)
        for i, item in enumerate(tokenized):
            if len(item.ids) > self.max_length:
                tokenized[i] = self._fit(texts[i], template, task, len(item.ids), i, truncation, offsets)
        return tokenized

    def prompt_overhead(self, template: PromptTemplate, task: str | None = None) -> tuple[int, int]:
        """(tokens the prompt adds around a text, copies of the text it holds): what a window leaves a text."""
        rendered = template.render("", task)
        # (an empty prompt with no special tokens would come back as the lone fallback token)
        overhead = len(self.tokenize([rendered])[0].ids) if rendered.string or self.num_special else 0
        return overhead, max(1, template.template.count("{text}"))

    def _fit(
        self,
        text: str,
        template: PromptTemplate,
        task: str | None,
        length: int,
        index: int,
        truncation: bool,
        offsets: bool = False,
    ) -> TokenizedText:
        if not truncation:
            raise InputError(
                f"text {index} is {length} tokens long with its prompt, over max_length={self.max_length}; "
                "shorten it, raise max_length, or pass truncation=True to cut it"
            )
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        copies = max(1, template.template.count("{text}"))
        keep = len(offsets) - -(-(length - self.max_length) // copies)
        while keep > 0:
            cut = text[: offsets[keep - 1][1]]
            item = self.tokenize([template.render(cut, task)], offsets)[0]
            if len(item.ids) <= self.max_length:
                item.truncated = True
                return item
            keep -= 1
        raise InputError(f"the prompt alone is longer than max_length={self.max_length} tokens")


def _placeholder_id(tokenizer) -> int:
    """A placeholder's input embedding only matters below the first block that overwrites it."""
    for candidate in (tokenizer.unk_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return candidate
    return 0


def _special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text (e.g. BOS; CLS … SEP)."""
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    return [], []


def _in_spans(start: int, end: int, spans: tuple[tuple[int, int], ...]) -> bool:
    # an empty text's span has no characters, so no token is the text (not even one that straddles it)
    return end > start and any(a < b and start < b and end > a for a, b in spans)


def collate(items: Sequence[TokenizedText], pad_id: int, padding_side: str, prefix_length: int = 0) -> TokenBatch:
    """Pad to the longest item; positions count real tokens so padding doesn't shift them.

    With a cached ``prefix_length``, left padding goes between the shared prefix and the rest
    (``[prefix][pads][rest]``), so the prefix columns are the same for every row.
    """
    width = max(len(item.ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    text = torch.zeros((len(items), width), dtype=torch.bool)
    has_pst = any(item.pst_index is not None for item in items)
    pst = torch.zeros(len(items), dtype=torch.long) if has_pst else None
    for row, item in enumerate(items):
        n = len(item.ids)
        pad = width - n if padding_side == "left" else 0
        columns = torch.arange(n)
        columns[prefix_length:] += pad
        ids[row, columns] = torch.tensor(item.ids)
        attention[row, columns] = 1
        text[row, columns] = torch.tensor(item.text_mask, dtype=torch.bool)
        if pst is not None:
            if item.pst_index is None:
                raise InputError("a batch mixes prompts with and without a Token Prepending placeholder")
            pst[row] = columns[item.pst_index]
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    return TokenBatch(ids, attention, positions, text, pst)


def shared_prefix_length(items: Sequence[TokenizedText], prefix_ids: Sequence[int]) -> int:
    """How many leading tokens every item shares with ``prefix_ids`` (each item keeps at least one own token,
    and a Token Prepending placeholder is never part of the shared prefix)."""
    length = len(prefix_ids)
    for item in items:
        limit = min(length, len(item.ids) - 1, item.pst_index if item.pst_index is not None else length)
        common = 0
        while common < limit and item.ids[common] == prefix_ids[common]:
            common += 1
        length = common
    return max(length, 0)


def plain_batches(tokenizer, texts: Sequence[str], batch_size: int = 16, max_length: int = 256) -> list[TokenBatch]:
    """Texts as they are (the tokenizer's own special tokens, no prompt), right-padded batches of ``batch_size``,
    positions counted over real tokens: what a backend calibrates or is timed on outside a forward loop."""
    batches = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt", padding_side="right")  # fmt: skip
        mask = encoded["attention_mask"]
        batches.append(TokenBatch(encoded["input_ids"], mask, (mask.cumsum(1) - 1).clamp(min=0), mask.bool(), None))
    return batches
