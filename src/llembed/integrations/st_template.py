"""A sentence-transformers ``Transformer`` that closes llembed's text templates.

sentence-transformers prompts are prefixes. PromptEOL-style templates (``prompteol``, ``instructeol``, ``ke``)
also put words *after* the text (``" means in one word:"``): this module appends that suffix to every text
before tokenizing, so ST's ``prompt + text`` plus the suffix is exactly llembed's rendered template. An exported
folder names this class in ``modules.json``, so loading it needs llembed installed (no remote code).
"""

from __future__ import annotations

from typing import Any

from sentence_transformers.sentence_transformer.modules import Transformer


class TemplateTransformer(Transformer):
    config_keys = [*Transformer.config_keys, "text_suffix"]

    def __init__(self, *args: Any, text_suffix: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_suffix = text_suffix

    def preprocess(self, inputs, prompt: str | None = None, **kwargs: Any) -> dict[str, Any]:
        if self.text_suffix:
            inputs = [text + self.text_suffix if isinstance(text, str) else text for text in inputs]
        return super().preprocess(inputs, prompt, **kwargs)
