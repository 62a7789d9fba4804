"""Text generators: a local Hugging Face chat model, or any OpenAI-compatible endpoint.

Both take a batch of conversations (lists of ``{"role", "content"}`` messages) and return one reply each. The
local generator can also score continuations (log-likelihood), which the Gecko recipe uses to rank passages.
Synthesis writes training data with them; "think, then embed" queries (:mod:`llembed.thinking`) use them too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llembed.errors import InputError

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95


class LocalGenerator:
    """A local causal LM with a chat template (default: the bundled SmolLM2-135M-Instruct)."""

    def __init__(self, model: str | None = None, batch_size: int = 8, seed: int = 0) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llembed.model_sources import dequantized_gguf, locate

        source = locate(model)
        path = dequantized_gguf(source) if source.gguf_file is not None else source.path
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._attach(source.name, tokenizer, batch_size, seed)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, local_files_only=True).eval()

    @classmethod
    def of(cls, name: str, model, tokenizer, batch_size: int = 8, seed: int = 0) -> LocalGenerator:
        """A generator over a causal LM already loaded (e.g. an embedder's own); its tokenizer is copied, since
        generation pads on the left."""
        import copy

        generator = cls.__new__(cls)
        generator._attach(name, copy.deepcopy(tokenizer), batch_size, seed)
        generator.model = model
        return generator

    def _attach(self, name: str, tokenizer, batch_size: int, seed: int) -> None:
        if tokenizer.chat_template is None:
            raise InputError(f"{name} has no chat template: generation needs an instruction-tuned chat model")
        self.name = name
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size
        self.seed = seed
        self.calls = 0

    def chat(self, conversations: Sequence[Messages], settings: GenerationSettings | None = None) -> list[str]:
        settings = settings or GenerationSettings()
        replies: list[str] = []
        for start in range(0, len(conversations), self.batch_size):
            replies += self._generate(conversations[start : start + self.batch_size], settings)
        return replies

    @torch.inference_mode()
    def _generate(self, conversations: Sequence[Messages], settings: GenerationSettings) -> list[str]:
        prompts = [
            self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        self.calls += 1
        torch.manual_seed(self.seed * 7919 + self.calls)  # reproducible, but a retry draws new samples
        sampling = settings.temperature > 0
        output = self.model.generate(
            **batch,
            max_new_tokens=settings.max_new_tokens,
            do_sample=sampling,
            temperature=settings.temperature if sampling else None,
            top_p=settings.top_p if sampling else None,
            top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        new = output[:, batch["input_ids"].shape[1] :]
        return [text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    @torch.inference_mode()
    def log_likelihood(self, contexts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Mean log-probability of each continuation's tokens after its context (query likelihood)."""
        scores = []
        for start in range(0, len(contexts), self.batch_size):
            pairs = list(
                zip(
                    contexts[start : start + self.batch_size],
                    continuations[start : start + self.batch_size],
                    strict=True,
                )
            )
            ids, masks, spans = [], [], []
            for context, continuation in pairs:
                head = self.tokenizer(context, add_special_tokens=False)["input_ids"]
                tail = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
                ids.append(head + tail)
                spans.append((len(head), len(head) + len(tail)))
            width = max(len(row) for row in ids)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in ids])
            masks = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
            positions = (masks.cumsum(dim=1) - 1).clamp(min=0)
            logits = self.model(input_ids=input_ids, attention_mask=masks, position_ids=positions).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            for row, (begin, end) in enumerate(spans):
                offset = width - len(ids[row])
                targets = input_ids[row, offset + begin : offset + end]
                predicted = logprobs[row, offset + begin - 1 : offset + end - 1]
                scores.append(float(predicted.gather(1, targets.unsqueeze(1)).mean()))
        return scores


class OpenAIGenerator:
    """Any OpenAI-compatible chat-completions endpoint (``base_url`` ends before ``/chat/completions``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_attempts: int = 4,
    ) -> None:
        from llembed.extras import require

        require("synth", "an OpenAI-compatible generator endpoint")
        import httpx

        self.name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=timeout, headers=headers)
        self.max_attempts = max_attempts

    def chat(self, conversations: Sequence[Messages], settings: GenerationSettings | None = None) -> list[str]:
        settings = settings or GenerationSettings()
        return [self._one(list(c), settings) for c in conversations]

    def _one(self, messages: Messages, settings: GenerationSettings) -> str:
        import httpx

        payload = {
            "model": self.name,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.post(self.url, json=payload)
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return response.json()["choices"][0]["message"]["content"] or ""
                    except (ValueError, KeyError, IndexError, TypeError) as exc:
                        raise InputError(f"{self.url} answered 200 but not a chat completion: {exc}") from exc
                if response.status_code not in (408, 409, 429) and response.status_code < 500:
                    raise InputError(f"{self.url} refused the request ({response.status_code}): {response.text[:300]}")
                error = f"HTTP {response.status_code}"
            if attempt < self.max_attempts:
                delay = min(2.0**attempt, 30.0) / 4
                logger.warning("%s failed (%s); retry %d in %.1f s", self.url, error, attempt, delay)
                time.sleep(delay)
        raise InputError(f"{self.url} failed {self.max_attempts} times; last error: {error}")


def make_generator(
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    seed: int = 0,
    batch_size: int = 8,
):
    """A local generator, or an endpoint's when ``base_url`` is given (``model`` then names the served model)."""
    if base_url:
        return OpenAIGenerator(base_url, model or "default", api_key_env)
    return LocalGenerator(model, batch_size=batch_size, seed=seed)
