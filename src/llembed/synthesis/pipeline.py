"""One synthesis run: generate (resumable) → consistency filter → training JSONL + sample sheet."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from llembed.io_utils import atomic_write_text
from llembed.synthesis.consistency import consistent
from llembed.synthesis.e5 import E5Options, synthesize_e5
from llembed.synthesis.gecko import GeckoOptions, synthesize_gecko
from llembed.synthesis.parsing import Drops
from llembed.synthesis.sheet import write_sheet
from llembed.synthesis.store import SynthesisStore


@dataclass
class SynthesisResult:
    output: Path
    written: int
    drops: Drops
    sheets: list[Path]


def finish(
    store: SynthesisStore, drops: Drops, filter_embedder, top_k: int, corpus=(), title: str = ""
) -> SynthesisResult:
    records = list(store.kept.records)
    if filter_embedder is not None and records:
        flags = consistent(records, filter_embedder, top_k, corpus)
        failed = flags.count(False)
        if failed:
            drops.reasons[f"consistency filter (positive not in top {top_k})"] = failed
        records = [r for r, ok in zip(records, flags, strict=True) if ok]
    lines = []
    for record in records:
        row = {k: v for k, v in record.items() if k != "meta"}
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_text(store.output, "".join(lines))
    sheets = write_sheet(store.output.with_suffix(""), records, drops, title or store.output.name)
    state = store.load_state()
    store.save_state({**state, "drops": drops.to_dict(), "written": len(records)})
    store.close()
    return SynthesisResult(store.output, len(records), drops, sheets)


def run_e5(generator, output: str | Path, options: E5Options, filter_embedder=None, top_k: int = 3):
    store = SynthesisStore(output)
    total = len(options.kinds) * options.tasks_per_kind * options.examples_per_task
    with tqdm(total=total, initial=len(store.kept.records), desc="synthesizing (e5)", unit="example") as bar:
        drops = synthesize_e5(generator, store, options, progress=bar.update)
    return finish(store, drops, filter_embedder, top_k, title=f"E5-style synthesis: {options.domain}")


def run_gecko(
    generator,
    output: str | Path,
    passages: dict[str, str],
    embedder,
    options: GeckoOptions,
    filter_embedder=None,
    top_k: int = 3,
):
    store = SynthesisStore(output)
    with tqdm(total=len(passages), initial=len(store.kept.records), desc="synthesizing (gecko)", unit="example") as bar:
        drops = synthesize_gecko(generator, store, passages, embedder, options, progress=bar.update)
    return finish(store, drops, filter_embedder, top_k, corpus=list(passages.values()), title="Gecko-style synthesis")
