"""The package's imports go one way: core ← integrations ← jobs ← cli, and no module imports itself back.

Imports are read from the source: every ``import``, also those inside functions (a lazy import is still a
dependency) and under ``if TYPE_CHECKING:`` (an annotation that names a module above is a cycle waiting for its
first runtime use). Importing ``a.b.c`` from outside package ``a.b`` runs ``a/b/__init__.py`` first, so it counts
as importing ``a.b`` too. The test fails on a cycle or an upward import before anything runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "llembed"

# layer of each top-level part of the package; lower numbers are lower layers
LAYERS = {
    "core": 0,
    "integrations": 1,
    "jobs": 2,
    "cli": 3,
}
JOBS = {"evaluation", "training", "synthesis", "serving", "index", "corpus"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "surface"  # llembed/__init__.py: the public names, from the core
    top = parts[1]
    if top == "cli":
        return "cli"
    if top == "integrations":
        return "integrations"
    if top in JOBS:
        return "jobs"
    return "core"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The llembed modules ``path`` imports (``from llembed.x import y`` counts as ``llembed.x.y`` when that is a
    module, else ``llembed.x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    this = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "llembed"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = this.split(".")[: len(this.split(".")) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "llembed":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return (found | {parent for name in found for parent in _outer_packages(name, this)}) - {this}


def _outer_packages(name: str, importer: str) -> list[str]:
    """The packages whose ``__init__`` importing ``name`` runs, short of those ``importer`` already sits in."""
    parts = name.split(".")
    packages = [".".join(parts[:end]) for end in range(2, len(parts))]
    return [package for package in packages if not (importer + ".").startswith(package + ".")]


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES} for name, path in MODULES.items()}


def test_the_package_is_found():
    assert "llembed.embedder" in GRAPH and "llembed.cli" in GRAPH and len(GRAPH) > 60


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down(module):
    layer = layer_of(module)
    if layer == "surface":
        upward = {m for m in GRAPH[module] if layer_of(m) != "core"}
    else:
        upward = {m for m in GRAPH[module] if layer_of(m) != "surface" and LAYERS[layer_of(m)] > LAYERS[layer]}
        upward |= {m for m in GRAPH[module] if layer_of(m) == "surface" and layer != "cli"}
    assert not upward, f"{module} ({layer}) imports upward: {sorted(upward)}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: every component must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    """The rules above can fail: a planted core → cli import and a two-module cycle are both found."""
    planted = tmp_path / "llembed"
    (planted / "cli").mkdir(parents=True)
    (planted / "__init__.py").write_text("")
    (planted / "cli" / "__init__.py").write_text("from llembed.recipe import Recipe\n")
    (planted / "recipe.py").write_text("def f():\n    from llembed.cli import app\n")
    (planted / "a.py").write_text("import llembed.b\n")
    (planted / "b.py").write_text("from llembed import a\n")
    (planted / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from llembed.cli import app\n"
    )
    (planted / "d.py").write_text("from llembed.cli.sub import thing\n")
    (planted / "cli" / "sub.py").write_text("from llembed.cli.inner import x\n")
    global PACKAGE, MODULES
    saved = PACKAGE, MODULES
    try:
        PACKAGE = planted
        MODULES = {module_name(path): path for path in planted.rglob("*.py")}
        graph = {name: {m for m in imports_of(path) if m in MODULES} for name, path in MODULES.items()}
    finally:
        PACKAGE, MODULES = saved
    assert "llembed.cli" in graph["llembed.recipe"] and layer_of("llembed.cli") == "cli"
    assert "llembed.b" in graph["llembed.a"] and "llembed.a" in graph["llembed.b"]
    assert graph["llembed.c"] == {"llembed.cli"}  # an annotation-only import is still an edge
    assert graph["llembed.d"] == {"llembed.cli", "llembed.cli.sub"}  # the package's __init__ runs first
    assert graph["llembed.cli.sub"] == set()  # inside its own package: no edge to it (inner is not a module here)
