"""Moved to :mod:`llembed.prompt_template`: templates sit below the strategies (and the tokenizer) that use them.
Importing from here still works, with a warning."""

import warnings

from llembed.prompt_template import PromptTemplate, Rendered

warnings.warn(
    "llembed.prompts.template moved to llembed.prompt_template (PromptTemplate is also llembed.prompts.PromptTemplate)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["PromptTemplate", "Rendered"]
