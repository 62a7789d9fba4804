"""What every command shares: the recipe options (one name per field, as in Python and YAML), loading an
embedder through the one resolver, and the one error handler (a clear line and exit code 2, no traceback)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from llembed.chunking import CHUNKINGS
from llembed.errors import LlembedError
from llembed.pooling import POOLINGS
from llembed.recipe import BACKENDS, DTYPES, FIELD_ROLES, LAYER_HELP, PRECISIONS, parse_layer_spec

console = Console(stderr=True, soft_wrap=True)
out = Console()

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model: alias, HF folder, .gguf file, cached hub id, `llembed train` run or recipe file"
    ),
]
RecipeOpt = Annotated[Path | None, typer.Option("--recipe", help="Recipe YAML/JSON; other flags override it")]
PromptOpt = Annotated[str | None, typer.Option(help="Prompt strategy (see `llembed strategies`) or a {text} template")]
PoolingOpt = Annotated[str | None, typer.Option(help=" | ".join(POOLINGS))]
LayerOpt = Annotated[str | None, typer.Option(help=f"Layer: {LAYER_HELP}")]
TaskOpt = Annotated[str | None, typer.Option(help="Task description for instruction prompts")]
BidirectionalOpt = Annotated[bool | None, typer.Option("--bidirectional/--causal")]
ExcludePromptOpt = Annotated[bool | None, typer.Option("--exclude-prompt/--include-prompt")]
DtypeOpt = Annotated[str | None, typer.Option(help=" | ".join(DTYPES))]
BackendOpt = Annotated[str | None, typer.Option(help="CPU forward pass: " + " | ".join(BACKENDS))]
MaxLengthOpt = Annotated[int | None, typer.Option(help="Max tokens per prompted text")]
TruncationOpt = Annotated[bool | None, typer.Option("--truncation/--no-truncation")]
ChunkingOpt = Annotated[
    str | None, typer.Option(help="Long texts: " + "; ".join(f"{k}: {v}" for k, v in CHUNKINGS.items()))
]
ChunkTokensOpt = Annotated[int | None, typer.Option(help="Text tokens per chunk (default 512, or what fits)")]
ChunkOverlapOpt = Annotated[int | None, typer.Option(help="Tokens consecutive chunks share")]
ThinkOpt = Annotated[
    str | None,
    typer.Option(help="Think, then embed: a rationale for each query from 'self', a chat model or an endpoint URL"),
]
ThinkModelOpt = Annotated[str | None, typer.Option(help="Model name to ask the --think endpoint for")]
ThinkPromptOpt = Annotated[str | None, typer.Option(help="The generator's instruction, holding {text}")]
ThinkTokensOpt = Annotated[int | None, typer.Option(help="Most tokens of a rationale (default 96)")]
PrecisionOpt = Annotated[str | None, typer.Option(help=" | ".join(PRECISIONS))]
BatchSizeOpt = Annotated[int, typer.Option(help="Texts per forward pass", min=1)]
NormalizeOpt = Annotated[bool | None, typer.Option("--normalize/--no-normalize")]
TruncateDimOpt = Annotated[int | None, typer.Option(help="Matryoshka: keep the first N dimensions")]

RECIPE_FLAGS: dict[str, Any] = {
    "prompt": PromptOpt,
    "pooling": PoolingOpt,
    "layer": LayerOpt,
    "task": TaskOpt,
    "bidirectional": BidirectionalOpt,
    "exclude_prompt": ExcludePromptOpt,
    "dtype": DtypeOpt,
    "backend": BackendOpt,
    "max_length": MaxLengthOpt,
    "truncation": TruncationOpt,
    "chunking": ChunkingOpt,
    "chunk_tokens": ChunkTokensOpt,
    "chunk_overlap": ChunkOverlapOpt,
    "think": ThinkOpt,
    "think_model": ThinkModelOpt,
    "think_prompt": ThinkPromptOpt,
    "think_tokens": ThinkTokensOpt,
    "normalize": NormalizeOpt,
    "truncate_dim": TruncateDimOpt,
    "precision": PrecisionOpt,
}
"""Every recipe field a command can take as a flag, named as in Python and YAML (``--exclude-prompt``)."""
PIPELINE_FLAGS = tuple(name for name in RECIPE_FLAGS if name not in FIELD_ROLES["output"])
"""The flags that shape the pooled vectors (the rest only format them)."""

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: F) -> F:
    """Every command's one error handler: a :class:`LlembedError` becomes ``error: …`` on stderr, exit 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LlembedError as exc:
            # the message is plain text: brackets in it ("llembed[eval]", "[start, stop)") are no markup
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def recipe_flags(*names: str) -> Callable[[F], F]:
    """Give a command the recipe flags ``names`` (default: all of :data:`RECIPE_FLAGS`): they are added to its
    signature for typer, and reach the command as one ``recipe_fields`` dict of the flags that were set."""
    chosen = names or tuple(RECIPE_FLAGS)

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)  # typer reads this one: no string annotations
        own = [p for p in signature.parameters.values() if p.name != "recipe_fields"]
        keyword = inspect.Parameter.KEYWORD_ONLY
        added = [inspect.Parameter(name, keyword, default=None, annotation=RECIPE_FLAGS[name]) for name in chosen]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fields = recipe_options(**{name: kwargs.pop(name, None) for name in chosen})
            return command(*args, recipe_fields=fields, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + added)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def layer_value(value: str | None) -> int | list[int] | str | None:
    """``--layer`` as the recipe holds it: ``-1`` → -1, ``3,5`` → [3, 5], ``-4:`` stays a slice string."""
    if value is None:
        return None
    parsed = parse_layer_spec(value)  # a bad value is a RecipeError naming the field and the forms
    if isinstance(parsed, slice):
        return value
    return parsed if "," in value else parsed[0]


def recipe_options(**options: Any) -> dict[str, Any]:
    """The recipe fields a command was given (flags left unset are not overrides)."""
    if "layer" in options:
        options["layer"] = layer_value(options["layer"])
    return {key: value for key, value in options.items() if value is not None}


def load_embedder(model: str | None, recipe: Path | None, **fields: Any):
    """The embedder ``--model`` / ``--recipe`` / recipe flags (``recipe_fields`` from :func:`recipe_flags`)
    name, through the one resolver."""
    from llembed.embedder import Embedder

    return Embedder.from_pretrained(model, recipe=recipe, **fields)
