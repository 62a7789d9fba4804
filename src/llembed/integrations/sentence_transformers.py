"""Export an embedder as a sentence-transformers folder (reading one is :mod:`llembed.resolve`'s job).

sentence-transformers can express: final-layer states, causal attention, its pooling modes, prompts that are
prefixes of the text, prompt exclusion from pooling, and L2 normalisation. Anything else (PromptEOL-style
templates with text inside, echo, MetaEOL, token prepending, intermediate layers, bidirectional attention,
EOS appending) gets a clear error rather than an export that silently embeds differently.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from llembed.embedder import Embedder
from llembed.errors import RecipeError
from llembed.pooling import POOLINGS
from llembed.prompts import PromptTemplate


def _st_prompts(embedder: Embedder) -> dict[str, str]:
    """The strategy as sentence-transformers prefix prompts, or an error saying why it can't be."""
    strategy = embedder.strategy
    prompts: dict[str, str] = {}
    sides = {"query": strategy.query_templates, "document": strategy.document_templates or strategy.query_templates}
    for side, templates in sides.items():
        if len(templates) != 1:
            raise RecipeError(f"prompt {strategy.name!r} averages {len(templates)} prompts: not expressible in ST")
        template = templates[0].template
        if template.count("{text}") != 1 or not template.endswith("{text}") or "{pst}" in template:
            raise RecipeError(
                f"prompt {strategy.name!r} puts text inside its template ({template[:40]!r}…); sentence-transformers "
                "prompts are prefixes only"
            )
        prefix = template[: -len("{text}")]
        if "{task}" in prefix:
            task = embedder.recipe.task
            if task is None:
                raise RecipeError("set the recipe's task to export an instruction prompt")
            prefix = prefix.replace("{task}", task)
        prompts[side] = prefix
        if embedder.recipe.exclude_prompt and prefix:
            _check_prompt_boundary(embedder, prefix)
    return prompts


def _check_prompt_boundary(embedder: Embedder, prefix: str) -> None:
    """ST excludes as many tokens as the prompt has when tokenized alone; llembed excludes by character offsets.
    They agree only when the prompt's tokens are unchanged by the text that follows (e.g. a prompt ending in a
    newline; not one ending in a space, which merges into the text's first token)."""
    tokenizer = embedder.prompt_tokenizer
    probe = tokenizer.tokenize([PromptTemplate(prefix + "{text}").render("Hello world")])[0]
    ours = probe.text_mask.index(True)
    theirs = len(tokenizer.tokenize([PromptTemplate("{text}").render(prefix)])[0].ids) - len(tokenizer.suffix_ids)
    if ours != theirs:
        raise RecipeError(
            f"with exclude_prompt, sentence-transformers would exclude {theirs} prompt tokens where llembed excludes "
            f"{ours} (the prompt {prefix[-12:]!r} merges with the text's first token); end the prompt with a newline"
        )


def export_sentence_transformers(embedder: Embedder, target: str | Path) -> Path:
    """Write ``embedder`` as a sentence-transformers folder; loading it with ``SentenceTransformer(target)`` and
    encoding with ``prompt_name="query"``/``"document"`` reproduces ``encode_queries``/``encode_documents``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    recipe = embedder.recipe
    backbone = embedder.backbone
    problems = []
    if recipe.bidirectional:
        problems.append("bidirectional attention")
    if recipe.chunking != "none":
        problems.append(f"chunking={recipe.chunking!r} (ST truncates long texts)")
    if embedder.layer_ids != [backbone.num_layers]:
        problems.append(f"layer={recipe.layer!r} (ST pools the final layer)")
    st_pooling = POOLINGS[recipe.pooling].st_name
    if st_pooling is None:
        problems.append(f"pooling={recipe.pooling!r}")
    if problems:
        raise RecipeError("sentence-transformers cannot express: " + ", ".join(problems))
    prompts = _st_prompts(embedder)

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        hf_dir = work / "hf"
        base = backbone.model.base_model if backbone.is_decoder else backbone.model
        base.save_pretrained(hf_dir)
        tokenizer = backbone.tokenizer
        saved_side = tokenizer.padding_side
        tokenizer.padding_side = embedder.padding_side
        try:
            tokenizer.save_pretrained(hf_dir)
        finally:
            tokenizer.padding_side = saved_side
        # text modality only: ST 6 would otherwise wrap texts in the chat template of instruct models
        transformer = Transformer(
            str(hf_dir),
            max_seq_length=recipe.max_length,
            modality_config={"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            module_output_name="token_embeddings",
        )
        modules = [
            transformer,
            Pooling(backbone.hidden_size, pooling_mode=st_pooling, include_prompt=not recipe.exclude_prompt),
        ]
        if recipe.normalize:
            modules.append(Normalize())
        model = SentenceTransformer(modules=modules, prompts=prompts, device="cpu", truncate_dim=recipe.truncate_dim)
        out = work / "st"
        model.save(str(out))
        recipe.save(out / "llembed_recipe.json")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
