"""Export an embedder as a sentence-transformers folder (reading one is :mod:`llembed.resolve`'s job).

sentence-transformers can express: final-layer states, causal attention, its pooling modes, prompts that are
prefixes of the text, prompt exclusion from pooling, and L2 normalisation; llembed's ``TemplateTransformer``
module adds the words a template puts after the text (PromptEOL). Anything else (echo, MetaEOL, token
prepending, intermediate layers, bidirectional attention, EOS appending) gets a clear error rather than an
export that silently embeds differently. A template's suffix survives only for texts within ``max_length``:
sentence-transformers cuts the whole sequence, llembed cuts the text inside the template.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from llembed.embedder import Embedder
from llembed.errors import InputError, RecipeError
from llembed.io_utils import current_umask
from llembed.pooling import POOLINGS
from llembed.prompts import PromptTemplate, templates_for


def _st_prompts(embedder: Embedder) -> tuple[dict[str, str], str]:
    """The strategy as sentence-transformers prefix prompts plus one text suffix shared by both sides (what
    :class:`~llembed.integrations.st_template.TemplateTransformer` appends), or an error saying why it can't be."""
    strategy = embedder.strategy
    prompts: dict[str, str] = {}
    suffixes: set[str] = set()
    for side in ("query", "document"):
        try:  # as encode_queries / encode_documents choose them: a task-optional strategy without a task too
            templates = templates_for(strategy, side, embedder.recipe.task)
        except InputError as exc:
            raise RecipeError("set the recipe's task to export an instruction prompt") from exc
        if len(templates) != 1:
            raise RecipeError(f"prompt {strategy.name!r} averages {len(templates)} prompts: not expressible in ST")
        template = templates[0].template
        if template.count("{text}") != 1 or "{pst}" in template:
            raise RecipeError(
                f"prompt {strategy.name!r} ({template[:40]!r}…) holds the text more than once or a placeholder "
                "token: sentence-transformers cannot express it"
            )
        prefix, suffix = template.split("{text}")
        prefix = prefix.replace("{task}", embedder.recipe.task or "")  # templates_for saw to it that a task is set
        prompts[side] = prefix
        suffixes.add(suffix)
        if embedder.recipe.exclude_prompt and prefix:
            _check_prompt_boundary(embedder, prefix)
    if len(suffixes) > 1:
        raise RecipeError(f"prompt {strategy.name!r} ends queries and documents differently: not expressible in ST")
    (suffix,) = suffixes
    if suffix and embedder.recipe.exclude_prompt:
        raise RecipeError("exclude_prompt with text after the template's {text}: sentence-transformers pools it")
    return prompts, suffix


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
    encoding with ``prompt_name="query"``/``"document"`` reproduces ``encode_queries``/``encode_documents``.
    A template with words after the text (PromptEOL) is written with llembed's ``TemplateTransformer``: load
    that folder with ``trust_remote_code=True`` (sentence-transformers' consent to import a module it does not
    ship; the code is llembed's, installed)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from llembed.integrations.st_template import TemplateTransformer

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
    prompts, suffix = _st_prompts(embedder)

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(work, 0o777 & ~current_umask())  # the folder a user exports is theirs to share, not mkdtemp's 0700
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
        # a template with words after the text (PromptEOL) needs the module that appends them
        transformer_class, extra = (TemplateTransformer, {"text_suffix": suffix}) if suffix else (Transformer, {})
        transformer = transformer_class(
            str(hf_dir),
            **extra,
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
