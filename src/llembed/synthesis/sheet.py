"""A sample sheet to eyeball a synthesis run: the drop counts and a random sample, as Markdown and HTML."""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from pathlib import Path

from llembed.io_utils import atomic_write_text
from llembed.synthesis.parsing import Drops


def write_sheet(path_stem: Path, records: Sequence[dict], drops: Drops, title: str, sample: int = 20) -> list[Path]:
    chosen = random.Random(0).sample(list(records), min(sample, len(records)))
    md = [
        f"# {title}",
        "",
        f"**{drops.kept} kept**, {len(records)} after the consistency filter.",
        "",
        "| drop reason | count |",
        "|---|---|",
    ]
    md += [f"| {reason} | {count} |" for reason, count in drops.reasons.most_common()]
    md += ["", f"## {len(chosen)} random examples", ""]
    for record in chosen:
        md += [
            f"### {record.get('id', '')} · {record.get('task', '')}",
            *([f"*instruction:* {record['instruction']}"] if record.get("instruction") else []),
            f"- **query:** {record['query']}",
            f"- **positive:** {record['positive']}",
            *[f"- **negative:** {n}" for n in record.get("negatives", [])],
            "",
        ]
    rows = "".join(
        f"<tr><td>{html.escape(str(r.get('task', '')))}</td><td>{html.escape(r['query'])}</td>"
        f"<td>{html.escape(r['positive'])}</td><td>{html.escape(' / '.join(r.get('negatives', [])))}</td></tr>"
        for r in chosen
    )
    drop_rows = "".join(
        f"<tr><td>{html.escape(reason)}</td><td>{count}</td></tr>" for reason, count in drops.reasons.most_common()
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse;margin-bottom:2em}</style>"
        f"<h1>{html.escape(title)}</h1><p><b>{drops.kept} kept</b>, {len(records)} after the consistency filter.</p>"
        f"<table><tr><th>drop reason</th><th>count</th></tr>{drop_rows}</table>"
        f"<table><tr><th>task</th><th>query</th><th>positive</th><th>negatives</th></tr>{rows}</table>"
    )
    md_path, html_path = path_stem.with_suffix(".sample.md"), path_stem.with_suffix(".sample.html")
    atomic_write_text(md_path, "\n".join(md) + "\n")
    atomic_write_text(html_path, page)
    return [md_path, html_path]
