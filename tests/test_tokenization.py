import pytest

from llembed.errors import InputError
from llembed.prompts import STRATEGIES, PromptTemplate
from llembed.tokenization import PromptTokenizer, collate


@pytest.fixture(scope="module")
def prompt_tokenizer(decoder_tokenizer):
    return PromptTokenizer(decoder_tokenizer, max_length=64)


@pytest.mark.parametrize("name", ["prompteol", "pcoteol", "ke", "icl", "instruction", "echo"])
def test_text_mask_selects_exactly_the_texts_tokens_by_offsets(prompt_tokenizer, decoder_tokenizer, name):
    text = "A woman slices tomatoes."
    template = STRATEGIES[name].query_templates[0]
    rendered = template.render(text, "Find it")
    item = prompt_tokenizer.tokenize([rendered])[0]
    offsets = decoder_tokenizer(rendered.string, add_special_tokens=False, return_offsets_mapping=True)
    assert item.ids == offsets["input_ids"]  # the prompt is tokenized as the model would see it
    spans = rendered.pooled_spans
    expected = [any(s < b and e > a for a, b in spans) for s, e in offsets["offset_mapping"]]
    assert item.text_mask == expected
    selected = "".join(
        rendered.string[s:e] for (s, e), keep in zip(offsets["offset_mapping"], expected, strict=False) if keep
    )
    # the text's tokens cover it; a token straddling text and prompt (here '."') counts as text
    assert text in selected and len(selected.strip()) <= len(text) + 1


def test_echo_mask_covers_the_second_copy_only(prompt_tokenizer, decoder_tokenizer):
    template = STRATEGIES["echo"].query_templates[0]
    item = prompt_tokenizer.tokenize([template.render("dogs bark")])[0]
    tokens = decoder_tokenizer.convert_ids_to_tokens(item.ids)
    masked = [t for t, keep in zip(tokens, item.text_mask, strict=False) if keep]
    assert "".join(masked).replace("Ġ", " ").strip() == "dogs bark"
    first_copy_end = tokens.index(",")
    assert not any(item.text_mask[:first_copy_end])


def test_placeholder_is_inserted_between_chunks(decoder_tokenizer):
    tokenizer = PromptTokenizer(decoder_tokenizer, max_length=64, placeholder_id=7)
    item = tokenizer.tokenize([STRATEGIES["token_prepending"].query_templates[0].render("hi there")])[0]
    before = decoder_tokenizer("This sentence :", add_special_tokens=False)["input_ids"]
    assert item.ids[: len(before)] == before
    assert item.pst_index == len(before) and item.ids[item.pst_index] == 7
    assert not item.text_mask[item.pst_index]


def test_eos_is_appended_once(decoder_tokenizer):
    tokenizer = PromptTokenizer(decoder_tokenizer, max_length=64, append_eos=True)
    item = tokenizer.tokenize([PromptTemplate("{text}").render("hello")])[0]
    assert item.ids[-1] == decoder_tokenizer.eos_token_id
    assert item.ids[:-1] == decoder_tokenizer("hello", add_special_tokens=False)["input_ids"]


def test_too_long_text_is_rejected_or_cut_from_the_end_of_the_text(decoder_tokenizer):
    long_text = " ".join(["word"] * 100)
    template = STRATEGIES["prompteol"].query_templates[0]
    with pytest.raises(InputError, match="over max_length=32"):
        PromptTokenizer(decoder_tokenizer, max_length=32).tokenize_texts([long_text], template)
    item = PromptTokenizer(decoder_tokenizer, max_length=32, truncation=True).tokenize_texts([long_text], template)[0]
    assert len(item.ids) <= 32
    assert decoder_tokenizer.decode(item.ids).endswith('" means in one word:"')  # the prompt's end survives


def test_collate_pads_both_sides_with_positions_counting_real_tokens():
    from llembed.tokenization import TokenizedText

    items = [TokenizedText([5, 6, 7], [False, True, True]), TokenizedText([8], [True])]
    right = collate(items, pad_id=0, padding_side="right")
    left = collate(items, pad_id=0, padding_side="left")
    assert right.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert left.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left.position_ids.tolist() == [[0, 1, 2], [0, 0, 0]]
    assert right.last_index.tolist() == [2, 0] and left.last_index.tolist() == [2, 2]
    assert left.text_mask.tolist() == [[False, True, True], [False, False, True]]


def test_encoder_special_tokens_are_wrapped_and_never_text():
    from transformers import AutoTokenizer

    from llembed.model_sources import locate

    tokenizer = AutoTokenizer.from_pretrained(locate("all-minilm-l6-v2").path)
    item = PromptTokenizer(tokenizer, max_length=64).tokenize([PromptTemplate("{text}").render("hello world")])[0]
    assert item.ids[0] == tokenizer.cls_token_id and item.ids[-1] == tokenizer.sep_token_id
    assert item.text_mask == [False, True, True, False]
