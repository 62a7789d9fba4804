"""Known-answer tests for every pooling on hand-built hidden states and masks, under both padding sides."""

import pytest
import torch

from llembed.errors import RecipeError
from llembed.pooling import pool

# Row 0 has 3 real tokens, row 1 has 2; hidden size 2. Values chosen so every pooling gives a distinct answer.
TOKENS = [
    [[1.0, 10.0], [2.0, -20.0], [4.0, 5.0]],
    [[3.0, 1.0], [-1.0, 7.0]],
]
EXPECTED = {
    "last": [[4.0, 5.0], [-1.0, 7.0]],
    "eos": [[4.0, 5.0], [-1.0, 7.0]],
    "first": [[1.0, 10.0], [3.0, 1.0]],
    "mean": [[7 / 3, -5 / 3], [1.0, 4.0]],
    # weights 1,2,3 / 6 and 1,2 / 3
    "weighted_mean": [[(1 + 4 + 12) / 6, (10 - 40 + 15) / 6], [(3 - 2) / 3, (1 + 14) / 3]],
    "max": [[4.0, 10.0], [3.0, 7.0]],
}


def padded(side: str, pad_value: float = 99.0):
    width = 3
    hidden = torch.full((2, width, 2), pad_value)
    mask = torch.zeros((2, width), dtype=torch.long)
    for row, tokens in enumerate(TOKENS):
        n = len(tokens)
        start = width - n if side == "left" else 0
        hidden[row, start : start + n] = torch.tensor(tokens)
        mask[row, start : start + n] = 1
    return hidden, mask


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", list(EXPECTED))
def test_pooling_known_answers(name, side):
    hidden, mask = padded(side)
    assert torch.allclose(pool(name, hidden, mask), torch.tensor(EXPECTED[name]), atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_pool_mask_restricts_mean_weighted_and_max_only(side):
    hidden, mask = padded(side)
    text = mask.clone().bool()
    # keep only the last real token of row 0 and the first real token of row 1 as "text"
    first_real = mask.argmax(dim=1)
    text[:] = False
    text[0, first_real[0] + 2] = True
    text[1, first_real[1]] = True
    assert torch.allclose(pool("mean", hidden, mask, text), torch.tensor([[4.0, 5.0], [3.0, 1.0]]))
    assert torch.allclose(pool("max", hidden, mask, text), torch.tensor([[4.0, 5.0], [3.0, 1.0]]))
    # weighted mean of a single token is that token, whatever its position weight
    assert torch.allclose(pool("weighted_mean", hidden, mask, text), torch.tensor([[4.0, 5.0], [3.0, 1.0]]))
    # last / first ignore the text mask: PromptEOL pools the prompt's final token by design
    assert torch.allclose(pool("last", hidden, mask, text), torch.tensor(EXPECTED["last"]))
    assert torch.allclose(pool("first", hidden, mask, text), torch.tensor(EXPECTED["first"]))


def test_weighted_mean_keeps_positions_of_excluded_prompt_tokens():
    # 3 tokens, the first is prompt: text tokens keep weights 2 and 3 (as sentence-transformers' weightedmean)
    hidden = torch.tensor([[[100.0], [1.0], [2.0]]])
    mask = torch.ones((1, 3), dtype=torch.long)
    text = torch.tensor([[False, True, True]])
    assert torch.allclose(pool("weighted_mean", hidden, mask, text), torch.tensor([[(2 * 1 + 3 * 2) / 5]]))


def test_pooling_computes_in_float32_from_bfloat16():
    hidden, mask = padded("right")
    assert pool("mean", hidden.bfloat16(), mask).dtype == torch.float32


def test_empty_pool_mask_is_an_error_not_a_zero_vector():
    hidden, mask = padded("right")
    with pytest.raises(RecipeError, match="no token to pool"):
        pool("mean", hidden, mask, torch.zeros_like(mask, dtype=torch.bool))


def test_unknown_pooling():
    hidden, mask = padded("right")
    with pytest.raises(RecipeError):
        pool("median", hidden, mask)
