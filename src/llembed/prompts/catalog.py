"""The template-only strategies of the literature (a strategy with layer hooks has a file of its own).

Adding a template-only strategy = one more ``Strategy`` in :data:`STRATEGIES` here; see the README's
contributor section.
"""

from __future__ import annotations

from llembed.errors import RecipeError
from llembed.prompt_template import PromptTemplate
from llembed.prompts.strategy import Strategy, single

PLAIN = PromptTemplate("{text}")
PROMPTEOL = 'This sentence : "{text}" means in one word:"'
PCOTEOL = 'After thinking step by step , this sentence : "{text}" means in one word:"'
KE = (
    "The essence of a sentence is often captured by its main subjects and actions, while descriptive terms "
    'provide additional but less central details. With this in mind , this sentence : "{text}" means in one word:"'
)
# without PromptEOL's explicit one-word limitation (PromptSTH, PromptSUM)
PROMPTSTH = 'This sentence : "{text}" means something'
PROMPTSUM = 'This sentence : "{text}" can be summarized as'
INSTRUCTION = "Instruct: {task}\nQuery: {text}"
INSTRUCTED_PROMPTEOL = "Instruct: {task}\n" + PROMPTEOL
ECHO = "Rewrite the sentence: {text}, rewritten sentence: {text}"
DEFAULT_ICL_EXAMPLES = (("A jockey riding a horse.", "Equestrian"),)

# MetaEOL (Lei et al., 2024, "Meta-Task Prompting Elicits Embeddings from Large Language Models", ACL):
# eight meta-task prompts; the sentence embedding is the average of the eight last-token embeddings.
METAEOL = (
    "In this task, you're presented with a text excerpt. Your task is to categorize the excerpt into a broad "
    "category such as 'Education', 'Technology', 'Health', 'Business', 'Environment', 'Politics', or 'Culture'. "
    "These categories help in organizing content for better accessibility and targeting. For this task, this "
    'sentence : "{text}" should be classified under one general category in one word:"',
    "In this task, you're given a statement and you need to determine whether it's presenting an 'Opinion' or a "
    "'Fact'. This distinction is vital for information verification, educational purposes, and content analysis. "
    'For this task, this sentence : "{text}" discriminates between opinion and fact in one word:"',
    "In this task, you're given a review from an online platform. Your task is to generate a rating for the "
    "product based on the review on a scale of 1-5, where 1 means 'extremely negative' and 5 means 'extremely "
    'positive\'. For this task, this sentence : "{text}" reflects the sentiment in one word:"',
    "In this task, you're reading a personal diary entry. Your task is to identify the predominant emotion "
    'expressed, such as joy, sadness, anger, fear, or love. For this task, this sentence : "{text}" conveys '
    'the emotion in one word:"',
    "In this task, you're presented with two sentences. Your task is to assess whether the sentences convey the "
    "same meaning. Use 'identical', 'similar', 'different', or 'unrelated' to describe the relationship. To "
    'enhance the performance of this task, this sentence : "{text}" means in one word:"',
    "In this task, you're given a sentence and a phrase. Your task is to determine if the phrase can be a "
    "contextual synonym within the given sentence. Options include 'yes', 'no', or 'partially'. To enhance the "
    'performance of this task, this sentence : "{text}" means in one word:"',
    "In this task, you're examining a news article. Your task is to extract the most critical fact from the "
    'article. For this task, this sentence : "{text}" encapsulates the key fact in one word:"',
    "In this task, you're reviewing a scientific abstract. Your task is to identify the main entities (e.g., "
    'proteins, diseases) and their relations (e.g., causes, treats). For this task, this sentence : "{text}" '
    'highlights the primary entity or relation in one word:"',
)


def icl_template(examples: list[list[str]] | tuple[tuple[str, str], ...] | None = None) -> str:
    """PromptEOL preceded by demonstrations ``This sentence : "s" means in one word:"w".`` (Jiang et al., 2023)."""
    examples = DEFAULT_ICL_EXAMPLES if examples is None else examples
    demos = []
    for example in examples:
        if len(example) != 2:
            raise RecipeError(f"an ICL example is [sentence, word], got {example!r}")
        sentence, word = example
        demos.append(f'This sentence : "{sentence}" means in one word:"{word}".')
    return "".join(demos) + PROMPTEOL


STRATEGIES: list[Strategy] = [
    Strategy("none", "the text as it is", "—", (PLAIN,)),
    Strategy(
        "instruction",
        "queries get 'Instruct: {task}\\nQuery: {text}', documents stay plain",
        "Wang et al., 2024, E5-Mistral (arXiv:2401.00368); Qwen3-Embedding (arXiv:2506.05176)",
        single(INSTRUCTION),
        (PLAIN,),
        needs_task=True,
    ),
    Strategy(
        "prompteol",
        'This sentence : "{text}" means in one word:" — summarise into the next token',
        "Jiang et al., 2023, Scaling Sentence Embeddings with LLMs (arXiv:2307.16645)",
        single(PROMPTEOL),
    ),
    Strategy(
        "instructeol",
        "queries get 'Instruct: {task}' before PromptEOL; documents and symmetric texts PromptEOL alone",
        "E5-Mistral's query instructions (arXiv:2401.00368) on PromptEOL (arXiv:2307.16645): the general adapter's",
        single(INSTRUCTED_PROMPTEOL),
        single(PROMPTEOL),
        needs_task=True,
        task_optional=True,  # a query without a task is embedded as a symmetric text: PromptEOL alone
    ),
    Strategy(
        "pcoteol",
        "PromptEOL after 'After thinking step by step ,' (pretended chain of thought)",
        "Zhang et al., 2024, Simple Techniques for Enhancing Sentence Embeddings (arXiv:2404.03921)",
        single(PCOTEOL),
    ),
    Strategy(
        "ke",
        "PromptEOL after a hint that subjects and actions carry the meaning (knowledge enhancement)",
        "Zhang et al., 2024, Simple Techniques for Enhancing Sentence Embeddings (arXiv:2404.03921)",
        single(KE),
    ),
    Strategy(
        "promptsth",
        'This sentence : "{text}" means something — PromptEOL without the one-word limitation',
        "Zhang et al., 2024 (arXiv:2404.03921); PromptSTH in Cheng et al., 2025 (arXiv:2505.12831)",
        single(PROMPTSTH),
    ),
    Strategy(
        "promptsum",
        'This sentence : "{text}" can be summarized as — a summary cue instead of one word',
        "Zhang et al., 2024 (arXiv:2404.03921); PromptSUM in Cheng et al., 2025 (arXiv:2505.12831)",
        single(PROMPTSUM),
    ),
    Strategy(
        "metaeol",
        "8 meta-task PromptEOL variants (topic, fact, sentiment, emotion, ...); vectors averaged",
        "Lei et al., 2024, Meta-Task Prompting Elicits Embeddings from LLMs (arXiv:2402.18458)",
        tuple(PromptTemplate(t) for t in METAEOL),
    ),
    Strategy(
        "echo",
        "the text twice ('Rewrite the sentence: x, rewritten sentence: x'); pool the second copy",
        "Springer et al., 2024, Repetition Improves Language Model Embeddings (arXiv:2402.15449)",
        single(ECHO, pool_occurrence="last"),
    ),
    Strategy(
        "icl",
        "in-context demonstrations ('... means in one word:\"Equestrian\".') before PromptEOL",
        "Jiang et al., 2023, Scaling Sentence Embeddings with LLMs (arXiv:2307.16645)",
        single(icl_template()),
    ),
]
