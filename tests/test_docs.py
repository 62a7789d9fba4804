"""The documentation: a README a newcomer reads in five minutes, and a site that builds with every link whole."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_is_short_and_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for heading in ("## Two commands", "## The first five minutes", "## Documentation"):
        assert heading in readme
    linked = {part.split(")")[0] for part in readme.split("](")[1:]}
    assert {"docs/getting-started.md", "docs/benchmarks/index.md", "CONTRIBUTING.md"} <= linked
    assert all((ROOT / link).exists() for link in linked if not link.startswith("http")), linked


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=config.parent)


def test_the_site_builds_strictly(tmp_path):
    """Broken links, pages missing from the navigation and API references that don't resolve all fail."""
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "encode_queries" in api and "ForwardLoop" in api  # the reference is read from the docstrings
    assert (tmp_path / "site" / "benchmarks" / "speed" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path):
    """The check can fail: the same site with one link to a missing page does not build."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs", symlinks=False)
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "src").symlink_to(ROOT / "src")
    page = copy / "docs" / "think.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nowhere](no-such-page.md).\n", encoding="utf-8")
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "no-such-page.md" in done.stdout + done.stderr
