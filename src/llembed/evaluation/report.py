"""The ablation report: results.json (machine-readable), results.md (tables), report.html (plots), and the best
recipe per task as a recipe file ready for ``Embedder.from_recipe``."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llembed.evaluation import report_sections as sections
from llembed.evaluation.ablation import Cell, best_cells
from llembed.evaluation.scenarios import section_summary
from llembed.evaluation.tasks import TASKS
from llembed.extras import require
from llembed.io_utils import atomic_write_text
from llembed.recipe import Recipe

require("eval", "the evaluation report")

METRIC_COLUMNS = {kind: list(task.metric_columns) for kind, task in TASKS.items()}
"""The metrics each task type's tables show (its task class says which)."""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _by_task(cells: list[Cell]) -> dict[str, list[Cell]]:
    grouped: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        grouped[cell.task].append(cell)
    return grouped


def write_report(cells: list[Cell], out_dir: Path, meta: dict[str, Any]) -> dict[str, Path]:
    out_dir = Path(out_dir)
    best = best_cells(cells)
    recipes = {}
    for task, cell in best.items():
        path = out_dir / f"best_{slug(task)}.yaml"
        Recipe.from_dict({k: v for k, v in cell.recipe.items() if k != "baseline"}).save(path)
        recipes[task] = path
    payload = {
        "meta": meta,
        "best": {t: {"label": c.label, "main": c.main, "recipe_file": recipes[t].name} for t, c in best.items()},
        "cells": [asdict(c) for c in cells],
    }
    paths = {
        "json": atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=1, default=str)),
        "md": atomic_write_text(out_dir / "results.md", markdown(cells, meta, best)),
        "html": atomic_write_text(out_dir / "report.html", html_report(cells, meta, best)),
    }
    return {**paths, **{f"best:{task}": path for task, path in recipes.items()}}


def compute_minutes(cells: list[Cell]) -> float:
    """Minutes the cells' embedding (and any generation) took when computed; one pass's cost is counted once."""
    passes = {}
    for cell in cells:
        eff = cell.efficiency
        key = (cell.task, cell.variant if cell.variant == "baseline" else "", str(sorted(eff.items())))
        passes[key] = float(eff.get("seconds", 0.0)) + float(eff.get("generation_seconds", 0.0))
    return sum(passes.values()) / 60


# ---------------------------------------------------------------------------------------------- markdown
def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def task_table(cells: list[Cell], best: Cell | None) -> list[list[str]]:
    kind = cells[0].type
    metrics = METRIC_COLUMNS.get(kind, [])
    header = ["recipe", "variant", *metrics, "tokens/s", "ms/text", "peak MB", "empty", "truncated"]
    rows = [header]
    for cell in sorted(cells, key=lambda c: -c.main):
        mark = " ★" if cell is best else ""
        eff = cell.efficiency
        rows.append(
            [
                cell.label + mark,
                cell.variant,
                *[_fmt(cell.scores.get(m, float("nan"))) for m in metrics],
                f"{eff.get('tokens_per_s', 0):.0f}",
                f"{eff.get('ms_per_text', 0):.1f}",
                f"{eff.get('peak_rss_mb', 0):.0f}",
                str(eff.get("empty", 0)),
                str(eff.get("truncated", 0)),
            ]
        )
    return rows


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def pivot(cells: list[Cell]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """Prompt × (pooling, layer) main scores of the dense grid cells."""
    values = {}
    prompts, columns = [], []
    for cell in cells:
        if cell.variant != "dense":
            continue
        prompt = str(cell.recipe.get("prompt"))
        column = f"{cell.recipe.get('pooling')} @ {cell.recipe.get('layer')}"
        prompts += [prompt] if prompt not in prompts else []
        columns += [column] if column not in columns else []
        values[(prompt, column)] = cell.main
    return prompts, columns, values


def markdown(cells: list[Cell], meta: dict, best: dict[str, Cell]) -> str:
    parts = [f"# llembed evaluation: {meta.get('model')}", ""]
    parts += [
        f"- suite: {meta.get('suite')}; run time {meta.get('seconds', 0):.0f} s; "
        f"{meta.get('computed', 0)} cells computed, {meta.get('reused', 0)} reused from cache",
        f"- machine: {meta.get('machine', '')}",
        f"- compute: {compute_minutes(cells):.0f} min of embedding (and generation) summed over the cells, as "
        "measured when each was computed (a cell reused from the cache keeps its time)",
        f"- trained on: {meta.get('trained_on', 'see the recipes')}",
        *([f"- note: {meta['note']}"] if meta.get("note") else []),
        "",
    ]
    if not meta.get("sections"):
        return "\n".join(parts + _task_markdown(cells, best, "##")) + "\n"
    for name in meta["sections"]:
        section_cells = [c for c in cells if c.section == name]
        parts += [f"## {sections.TITLES.get(name, name)}", "", section_summary(name), ""]
        for caption, rows in sections.section_tables(name, section_cells, meta):
            parts += [f"{caption}:", "", sections.md_table(rows), ""]
        parts += _task_markdown(section_cells, best, "###")
    return "\n".join(parts) + "\n"


def _task_markdown(cells: list[Cell], best: dict[str, Cell], heading: str) -> list[str]:
    parts = []
    for task, task_cells in _by_task(cells).items():
        parts.append(f"{heading} {task} ({task_cells[0].type})")
        notes = {c.note for c in task_cells if c.note}
        parts += [f"_Subsampled: {note}_" for note in notes]
        if task in best:
            parts.append(f"Best: **{best[task].label}** = {best[task].main:.2f} → `best_{slug(task)}.yaml`")
        parts.append("")
        prompts, columns, values = pivot([c for c in task_cells if c.variant == "dense"])
        if len(prompts) > 1 and len(columns) > 1:
            rows = [["prompt", *columns]]
            rows += [[p, *[_fmt(values.get((p, c), "")) for c in columns]] for p in prompts]
            parts += ["Main score, prompt × pooling @ layer:", "", _md_table(rows), ""]
        parts += [_md_table(task_table(task_cells, best.get(task))), ""]
    return parts


# ---------------------------------------------------------------------------------------------- html
def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(task: str, cells: list[Cell], best: Cell | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    images = []
    ranked = sorted(cells, key=lambda c: c.main)[-25:]
    figure, axis = plt.subplots(figsize=(8, 0.3 * len(ranked) + 1))
    colors = ["#d62728" if c is best else "#7f7f7f" if c.variant == "baseline" else "#1f77b4" for c in ranked]
    axis.barh(
        [f"{c.label} ({c.variant})" if c.variant not in ("dense", "baseline") else c.label for c in ranked],
        [c.main for c in ranked],
        color=colors,
    )
    axis.set_xlabel(f"{task}: main score (red = best recipe, grey = baselines)")
    images.append(_png(figure))

    prompts, columns, values = pivot(cells)
    if len(prompts) > 1 and len(columns) > 1:
        grid = np.array([[values.get((p, c), np.nan) for c in columns] for p in prompts])
        images.append(_png(sections.heatmap(grid, columns, prompts, f"{task}: prompt × pooling @ layer")))

    timed = [c for c in cells if c.efficiency.get("ms_per_text")]
    if timed:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        for cell in timed:
            color = "#d62728" if cell is best else "#7f7f7f" if cell.variant == "baseline" else "#1f77b4"
            axis.scatter(cell.efficiency["ms_per_text"], cell.main, color=color, s=40 if cell is best else 18)
            if cell is best or cell.variant == "baseline":
                axis.annotate(cell.label, (cell.efficiency["ms_per_text"], cell.main), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlabel("milliseconds per text (log)")
        axis.set_ylabel("main score")
        axis.set_title(f"{task}: quality vs. speed")
        images.append(_png(figure))
    return images


def html_report(cells: list[Cell], meta: dict, best: dict[str, Cell]) -> str:
    body = [
        f"<h1>llembed evaluation: {html.escape(str(meta.get('model')))}</h1>",
        f"<p>suite <b>{html.escape(str(meta.get('suite')))}</b> · run time {meta.get('seconds', 0):.0f} s · "
        f"{meta.get('computed', 0)} cells computed, {meta.get('reused', 0)} from cache · "
        f"{html.escape(str(meta.get('machine', '')))} · {compute_minutes(cells):.0f} min of embedding summed over "
        "the cells · trained on: "
        f"{html.escape(str(meta.get('trained_on', 'see the recipes')))}</p>",
    ]
    if not meta.get("sections"):
        body += _task_html(cells, best, "h2")
    for name in meta.get("sections") or []:
        section_cells = [c for c in cells if c.section == name]
        title = html.escape(sections.TITLES.get(name, name))
        body += [f"<h2>{title}</h2>", f"<p>{html.escape(section_summary(name))}</p>"]
        body += [f'<img src="{src}">' for src in sections.section_plots(name, section_cells, meta, _png)]
        for caption, rows in sections.section_tables(name, section_cells, meta):
            body += [f"<p><b>{html.escape(caption)}</b></p>", sections.html_table(rows)]
        body += _task_html(section_cells, best, "h3")
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child{text-align:left}tr.best{background:#ffe9e9}p.best{color:#b00}img{max-width:100%;"
        "display:block;margin:1em 0}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>llembed report</title><style>{style}</style>"
        f"</head><body>{''.join(body)}</body></html>\n"
    )


def _task_html(cells: list[Cell], best: dict[str, Cell], heading: str) -> list[str]:
    body = []
    for task, task_cells in _by_task(cells).items():
        body.append(f"<{heading}>{html.escape(task)} ({task_cells[0].type})</{heading}>")
        for note in {c.note for c in task_cells if c.note}:
            body.append(f"<p><i>Subsampled: {html.escape(note)}</i></p>")
        if task in best:
            body.append(
                f"<p class=best>Best recipe: <b>{html.escape(best[task].label)}</b> = {best[task].main:.2f} "
                f"— saved as <code>best_{slug(task)}.yaml</code></p>"
            )
        body += [f'<img src="{src}">' for src in _plots(task, task_cells, best.get(task))]
        rows = task_table(task_cells, best.get(task))
        table = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in rows[0]) + "</tr>"]
        for row in rows[1:]:
            css = ' class="best"' if row[0].endswith("★") else ""
            table.append(f"<tr{css}>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>")
        body.append("\n".join(table) + "</table>")
    return body
