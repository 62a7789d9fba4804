import pytest

from llembed.errors import InputError, RecipeError
from llembed.prompts import STRATEGIES, PromptTemplate, icl_template, resolve_strategy, templates_for


def test_prompteol_renders_the_paper_template_and_text_span():
    rendered = STRATEGIES["prompteol"].query_templates[0].render("A cat sits.")
    assert rendered.string == 'This sentence : "A cat sits." means in one word:"'
    ((start, end),) = rendered.pooled_spans
    assert rendered.string[start:end] == "A cat sits."


def test_exact_templates_of_the_papers():
    render = lambda name: STRATEGIES[name].query_templates[0].render("X").string  # noqa: E731
    assert render("pcoteol") == 'After thinking step by step , this sentence : "X" means in one word:"'
    assert render("ke").startswith("The essence of a sentence is often captured by its main subjects and actions")
    assert render("ke").endswith('With this in mind , this sentence : "X" means in one word:"')
    assert render("echo") == "Rewrite the sentence: X, rewritten sentence: X"
    assert render("promptsth") == 'This sentence : "X" means something'
    assert render("promptsum") == 'This sentence : "X" can be summarized as'
    assert (
        render("icl") == 'This sentence : "A jockey riding a horse." means in one word:"Equestrian".'
        'This sentence : "X" means in one word:"'
    )
    assert len(STRATEGIES["metaeol"].query_templates) == 8
    assert all('in one word:"' in t.render("X").string for t in STRATEGIES["metaeol"].query_templates)


def test_instruction_queries_and_plain_documents():
    strategy = STRATEGIES["instruction"]
    query = templates_for(strategy, "query", "Find answers")[0].render("why is the sky blue", "Find answers")
    assert query.string == "Instruct: Find answers\nQuery: why is the sky blue"
    assert templates_for(strategy, "document", None)[0].render("Rayleigh").string == "Rayleigh"
    with pytest.raises(InputError, match="task"):
        templates_for(strategy, "query", None)


def test_instructeol_instructs_queries_and_keeps_prompteol_elsewhere():
    strategy = STRATEGIES["instructeol"]
    query = templates_for(strategy, "query", "Find answers")[0].render("why", "Find answers")
    assert query.string == 'Instruct: Find answers\nThis sentence : "why" means in one word:"'
    ((start, end),) = query.pooled_spans
    assert query.string[start:end] == "why"
    expected = 'This sentence : "Rayleigh" means in one word:"'
    assert templates_for(strategy, "document", None)[0].render("Rayleigh").string == expected
    assert templates_for(strategy, "text", None)[0].render("Rayleigh").string == expected  # symmetric tasks
    assert templates_for(strategy, "query", None)[0].render("Rayleigh").string == expected  # no task: no instruction


def test_echo_pools_only_the_second_copy():
    rendered = STRATEGIES["echo"].query_templates[0].render("dogs bark")
    ((start, end),) = rendered.pooled_spans
    assert start == rendered.string.rindex("dogs bark") and end == len(rendered.string)


def test_token_prepending_marks_the_placeholder_position():
    rendered = STRATEGIES["token_prepending"].query_templates[0].render("hi")
    assert rendered.string == 'This sentence : "hi" means in one word:"'
    assert rendered.string[: rendered.pst_at] == "This sentence :"


def test_custom_templates():
    strategy = resolve_strategy("Represent {text} for {task}")
    assert strategy.needs_task
    assert strategy.query_templates[0].render("x", "search").string == "Represent x for search"
    with pytest.raises(RecipeError, match="unknown prompt"):
        resolve_strategy("promptEOL")
    with pytest.raises(RecipeError, match=r"\{text\}"):
        PromptTemplate("no placeholder")


def test_icl_examples_are_configurable():
    template = icl_template([["Dogs bark.", "Noise"], ["It rains.", "Weather"]])
    assert template.startswith('This sentence : "Dogs bark." means in one word:"Noise".This sentence : "It rains."')
    strategy = resolve_strategy("icl", [["Dogs bark.", "Noise"]])
    assert "Noise" in strategy.query_templates[0].template
