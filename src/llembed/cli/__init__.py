"""The ``llembed`` command line: thin typer commands over the library, one module per command group.

This module only registers them; what they share (recipe options, loading, the error handler) is in
:mod:`llembed.cli.common`. Every recipe option has the same name as the Python keyword and YAML key
(``--exclude-prompt`` ↔ ``exclude_prompt``).
"""

from __future__ import annotations

import os
import sys

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # llembed never downloads; fail fast instead of hanging
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llembed.cli.common import load_embedder  # noqa: E402
from llembed.cli.corpus import embed_corpus_command  # noqa: E402
from llembed.cli.embed import (  # noqa: E402
    distill_static_command,
    embed_command,
    export_st_command,
    strategies_command,
)
from llembed.cli.evaluate import eval_command  # noqa: E402
from llembed.cli.serve import index_app, rerank_command, search_command, serve_command  # noqa: E402
from llembed.cli.synth import serve_generator_command, synth_app  # noqa: E402
from llembed.cli.train import decontaminate_command, mine_command, train_command  # noqa: E402

app = typer.Typer(help="Turn any decoder-only LLM into a text-embedding model.", no_args_is_help=True)
app.command("embed")(embed_command)
app.command("eval")(eval_command)
app.command("strategies")(strategies_command)
app.command("export-st")(export_st_command)
app.command("distill-static")(distill_static_command)
app.command("train")(train_command)
app.command("mine-negatives")(mine_command)
app.command("decontaminate")(decontaminate_command)
app.add_typer(synth_app, name="synth")
app.command("serve-generator")(serve_generator_command)
app.command("serve")(serve_command)
app.add_typer(index_app, name="index")
app.command("search")(search_command)
app.command("rerank")(rerank_command)
app.command("embed-corpus")(embed_corpus_command)

__all__ = ["app", "load_embedder", "main"]


def main() -> None:  # pragma: no cover - console entry point alias
    sys.exit(app())
