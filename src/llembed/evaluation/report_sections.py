"""The full suite's report, one part per scenario: a recipes × tasks table and the section's own view (costs for
long documents and reasoning, languages for multilingual, a domains heat map, quality against model size)."""

from __future__ import annotations

import html
import math
from collections import defaultdict

from llembed.evaluation.ablation import Cell

TITLES = {
    "similarity": "Sentence similarity and the MTEB-style panel",
    "long": "Long documents",
    "multilingual": "Multilingual and cross-lingual",
    "code": "Code search",
    "reasoning": "Reasoning-aware queries (think, then embed)",
    "domains": "Domain-specific retrieval",
    "scaling": "Scaling with model size",
    "reranking": "Rerankers from the same LLM",
}


def row_label(cell: Cell) -> str:
    return cell.label if cell.variant in ("dense", "baseline") else f"{cell.label} ({cell.variant})"


def _fmt(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def matrix(cells: list[Cell]) -> tuple[list[str], list[str], dict[tuple[str, str], float]]:
    """Recipes (rows) × tasks (columns) of main scores, rows by mean score, baselines last."""
    tasks = list(dict.fromkeys(c.task for c in cells))
    values: dict[tuple[str, str], float] = {}
    for cell in cells:
        values[(_model_prefix(cell) + row_label(cell), cell.task)] = cell.main
    rows = list(dict.fromkeys(r for r, _ in values))

    def mean(row: str) -> float:
        found = [values[(row, t)] for t in tasks if (row, t) in values]
        return sum(found) / len(found) if found else float("-inf")

    baselines = {_model_prefix(c) + row_label(c) for c in cells if c.variant == "baseline"}
    rows.sort(key=lambda r: (r in baselines, -mean(r)))
    return rows, tasks, values


def _model_prefix(cell: Cell) -> str:
    return f"{cell.recipe['model']} · " if cell.section == "scaling" and cell.recipe.get("model") else ""


def matrix_rows(cells: list[Cell]) -> list[list[str]]:
    rows, tasks, values = matrix(cells)
    table = [["recipe", *tasks, *(["mean"] if len(tasks) > 1 else [])]]
    for row in rows:
        found = [values.get((row, t)) for t in tasks]
        present = [v for v in found if v is not None]
        mean = [_fmt(sum(present) / len(present)) if len(present) == len(tasks) else ""] if len(tasks) > 1 else []
        table.append([row, *[_fmt(v) for v in found], *mean])
    return table


def cost_rows(cells: list[Cell]) -> list[list[str]]:
    """What each recipe cost: throughput, time per text, peak memory, and any generation."""
    table = [["task", "recipe", "main", "tokens/s", "ms/text", "ms/query", "peak MB", "truncated", "generated",
              "generation s"]]  # fmt: skip
    for cell in sorted(cells, key=lambda c: (c.task, -c.main)):
        eff = cell.efficiency
        table.append(
            [
                cell.task,
                row_label(cell),
                _fmt(cell.main),
                f"{eff.get('tokens_per_s', 0):.0f}",
                f"{eff.get('ms_per_text', 0):.1f}",
                f"{eff['ms_per_query']:.0f}" if "ms_per_query" in eff else "",
                f"{eff.get('peak_rss_mb', 0):.0f}",
                str(eff.get("truncated", 0)),
                str(eff.get("generated", 0)),
                f"{eff.get('generation_seconds', 0):.1f}",
            ]
        )
    return table


def language_rows(cells: list[Cell]) -> list[list[str]]:
    """Per-language scores of multilingual sets (the subset scores each cell keeps)."""
    table = []
    for task in dict.fromkeys(c.task for c in cells):
        task_cells = [c for c in cells if c.task == task]
        # a subset's score is kept under its name (de, deu-eng); metric names are words or have underscores
        metrics = {"main", "f1", "precision", "recall", "accuracy", "map", "v_measure"}
        subsets = [k for k in task_cells[0].scores if "_" not in k and k not in metrics]
        if not subsets:
            continue
        table.append([f"{task}: recipe", *subsets])
        for cell in sorted(task_cells, key=lambda c: -c.main):
            table.append([row_label(cell), *[_fmt(cell.scores.get(s)) for s in subsets]])
    return table


def scaling_rows(cells: list[Cell], models: dict[str, dict]) -> list[list[str]]:
    tasks = list(dict.fromkeys(c.task for c in cells))
    table = [["model", "parameters (M)", "recipe", *tasks, "ms/text"]]
    grouped: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        grouped[(str(cell.recipe.get("model")), cell.label)].append(cell)
    for (model, label), group in sorted(
        grouped.items(), key=lambda item: models.get(item[0][0], {}).get("parameters", 0)
    ):
        params = models.get(model, {}).get("parameters")
        by_task = {c.task: c for c in group}
        ms = sum(c.efficiency.get("ms_per_text", 0) for c in group) / len(group)
        table.append(
            [
                model,
                f"{params / 1e6:.0f}" if params else "?",
                label,
                *[_fmt(by_task[t].main) if t in by_task else "" for t in tasks],
                f"{ms:.1f}",
            ]  # fmt: skip
        )
    return table


def section_tables(name: str, cells: list[Cell], meta: dict) -> list[tuple[str, list[list[str]]]]:
    """(caption, rows) of the section's summary tables."""
    tables = [("Main score, recipes × tasks", matrix_rows(cells))]
    if name in ("long", "reasoning", "code", "reranking"):
        tables.append(("What it cost", cost_rows(cells)))
    if name == "multilingual":
        tables.append(("Per language", language_rows(cells)))
    if name == "scaling":
        tables.append(("Quality and cost by model size", scaling_rows(cells, meta.get("models", {}))))
    return [(caption, rows) for caption, rows in tables if len(rows) > 1]


def md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def html_table(rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in rows[0]) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows[1:])
    return f"<table>{head}{body}</table>"


def heatmap(grid, columns: list[str], rows: list[str], title: str, small: bool = False):
    """A labelled heat map of main scores (NaN cells left blank); returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = (0.55 if small else 1.1) * len(columns) + 3
    figure, axis = plt.subplots(figsize=(width, (0.5 if small else 0.45) * len(rows) + (2.5 if small else 1.5)))
    image = axis.imshow(grid, cmap="viridis", aspect="auto")
    axis.set_xticks(range(len(columns)), columns, rotation=60 if small else 35, ha="right", fontsize=7 if small else 10)
    axis.set_yticks(range(len(rows)), rows, fontsize=8 if small else 10)
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            text = f"{value:.0f}" if small else f"{value:.1f}"
            axis.text(j, i, text, ha="center", va="center", color="white", fontsize=6 if small else 8)
    figure.colorbar(image, label="main score")
    axis.set_title(title)
    return figure


def section_plots(name: str, cells: list[Cell], meta: dict, to_png) -> list[str]:
    """A heat map of recipes × tasks (domains × recipes for the domains section); quality vs size for scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    images = []
    rows, tasks, values = matrix(cells)
    if len(tasks) > 1 or name == "domains":
        grid = np.array([[values.get((r, t), np.nan) for r in rows] for t in tasks])
        figure = heatmap(grid, rows, tasks, f"{TITLES.get(name, name)}: tasks × recipes", small=True)
        images.append(to_png(figure))
    if name == "scaling" and meta.get("models"):
        figure, axis = plt.subplots(figsize=(7, 4.5))
        models = meta["models"]
        for task in tasks:
            points = []
            for c in cells:
                model = str(c.recipe.get("model"))
                if c.task == task and model in models and c.recipe.get("prompt") == "prompteol":
                    points.append((models[model]["parameters"] / 1e6, c.main, c.efficiency.get("ms_per_text", 0)))
            if points:
                xs, ys, ms = zip(*sorted(points), strict=True)
                axis.plot(xs, ys, marker="o", label=task)
                for x, y, cost in points:
                    axis.annotate(f"{cost:.1f} ms", (x, y), fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("parameters (millions, log)")
        axis.set_ylabel("main score (PromptEOL · last)")
        axis.legend(fontsize=7)
        axis.set_title("Quality vs. model size (labels: ms per text)")
        images.append(to_png(figure))
    return images
