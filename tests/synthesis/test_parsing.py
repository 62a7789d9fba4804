"""Reading small-model output: JSON found wherever it is, and every drop has a reason."""

import pytest

from llembed.synthesis.parsing import Drops, extract_json, parse_list, validate

KEYS = ("user_query", "positive_document", "hard_negative_document")


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": "x"}',
        'Sure! Here is the example:\n{"a": 1, "b": "x"}\nHope this helps.',
        '```json\n{"a": 1, "b": "x"}\n```',
        'noise {not json} then {"a": 1, "b": "x"} tail',
    ],
)
def test_extract_json_finds_the_object(text):
    assert extract_json(text) == {"a": 1, "b": "x"}


def test_extract_json_respects_braces_inside_strings():
    assert extract_json('x {"q": "a } tricky { one", "n": 2} y') == {"q": "a } tricky { one", "n": 2}


def test_extract_json_gives_none_on_garbage():
    assert extract_json("I cannot do that.") is None
    assert extract_json('{"unterminated": "x"') is None


def test_parse_list_reads_json_or_bullets():
    assert parse_list('["Find recipes.", "Find wines."]') == ["Find recipes.", "Find wines."]
    assert parse_list("Tasks:\n1. Find recipes.\n2) Find wines.\n- Find bread.\nthanks") == [
        "Find recipes.",
        "Find wines.",
        "Find bread.",
    ]


def _fields(
    q="how to bake sourdough bread",
    p="Sourdough needs a starter and long fermentation at home.",
    n="Bread machines are popular kitchen appliances in many homes.",
):
    return {"user_query": q, "positive_document": p, "hard_negative_document": n}


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (None, "no JSON object in the reply"),
        ({"user_query": "x"}, "missing or non-string field 'positive_document'"),
        (_fields(q="   "), "empty field"),
        (_fields(q="bread"), "too short"),
        (_fields(n=_fields()["positive_document"]), "positive equals negative"),
        (_fields(p="How to bake sourdough bread?"), "query copied into a document"),
    ],
)
def test_validate_names_the_drop_reason(fields, reason):
    example, why = validate(fields, KEYS, (2, 3, 3))
    assert example is None and why == reason


def test_validate_maps_fields_to_a_training_example():
    example, why = validate(_fields(), KEYS, (2, 3, 3))
    assert why is None
    assert example == {
        "query": "how to bake sourdough bread",
        "positive": "Sourdough needs a starter and long fermentation at home.",
        "negatives": ["Bread machines are popular kitchen appliances in many homes."],
    }


def test_drops_round_trip_and_summary():
    drops = Drops(kept=2)
    drops.drop("too short")
    drops.drop("too short")
    again = Drops.from_dict(drops.to_dict())
    assert again.kept == 2 and again.reasons["too short"] == 2
    assert "2 too short" in again.summary()


def test_extract_fields_falls_back_to_labelled_lines():
    from llembed.synthesis.parsing import extract_fields

    text = 'Here you go:\nS1: The soup is hot.\n"S2": "The broth is very warm.",\nS3: The soup is not hot at all.'
    assert extract_fields(text, ("S1", "S2", "S3")) == {
        "S1": "The soup is hot.",
        "S2": "The broth is very warm.",
        "S3": "The soup is not hot at all.",
    }
    assert extract_fields("S1: only one label", ("S1", "S2", "S3")) is None


@pytest.mark.parametrize(
    ("reply", "query"),
    [
        ("A question to answer the passage: What drives white matter growth?", "What drives white matter growth?"),
        ("Search query: how do T cells age", "how do T cells age"),
        ("**Query:** what is X?", "what is X?"),
        ('{"query": "does aspirin thin blood"}', "does aspirin thin blood"),
        ('"How does aspirin work?"', "How does aspirin work?"),
        ("Which query language is best?", "Which query language is best?"),  # a query about queries stays whole
        ("What is the question: of life?", "What is the question: of life?"),
    ],
)
def test_gecko_query_loses_the_models_label_not_its_words(reply, query):
    from llembed.synthesis.gecko import _query_from_reply

    assert _query_from_reply(reply) == query
