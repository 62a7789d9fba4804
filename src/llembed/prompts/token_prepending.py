"""Token Prepending (Fu et al., 2024, "Token Prepending: A Training-Free Approach for Sentence Embeddings",
arXiv:2412.11556): a placeholder token before the text receives the last token's state at the input of early
blocks, so that the text's tokens, which can't see the end of the sentence in a causal model, see a summary of it.

All of it lives here: the template with its ``{pst}`` placeholder, the default blocks (``tp_layers``) and the
hooks that overwrite the placeholder's state.
"""

from __future__ import annotations

from typing import Any

import torch

from llembed.errors import RecipeError
from llembed.prompts.strategy import BlockHook, Strategy, single

TEMPLATE = 'This sentence :{pst} "{text}" means in one word:"'


class TokenPrepending(Strategy):
    def recipe_defaults(self, num_layers: int) -> dict[str, Any]:
        # the paper's Llama-2-7B setting replaces in blocks 1..7 of 32: the first quarter of the stack
        return {"tp_layers": [1, max(2, num_layers // 4)]}

    def block_hooks(self, recipe, template, batch, skip: int, num_layers: int) -> list[BlockHook]:
        if not template.has_placeholder:
            return []
        if batch.pst_index is None:
            raise RecipeError("Token Prepending needs the {pst} placeholder in every prompt of the batch")
        if bool((batch.pst_index < skip).any()):
            raise RecipeError("the Token Prepending placeholder cannot be part of a cached prefix")
        start, stop = recipe.tp_layers or self.recipe_defaults(num_layers)["tp_layers"]
        if not 0 <= start < num_layers:
            raise RecipeError(f"tp_layers start {start} is outside the model's {num_layers} blocks")
        # the columns that run: a cached prefix's columns are not part of the pass
        placeholder, last = batch.pst_index - skip, batch.last_index - skip

        def replace(_module, args, kwargs):
            hidden = (args[0] if args else kwargs["hidden_states"]).clone()
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            hidden[rows, placeholder.to(hidden.device)] = hidden[rows, last.to(hidden.device)]
            if args:
                return (hidden, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hidden}

        return [(block, replace) for block in range(start, min(stop, num_layers))]


STRATEGIES = [
    TokenPrepending(
        "token_prepending",
        "PromptEOL with a placeholder token before the text that receives the last token's state in early layers",
        "Fu et al., 2024, Token Prepending: A Training-Free Approach for Sentence Embeddings (arXiv:2412.11556)",
        single(TEMPLATE),
        placeholder=True,
    )
]
