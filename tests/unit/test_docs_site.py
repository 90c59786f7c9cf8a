"""The documentation: the README is a landing page, and docs/ builds as a site with no broken page, link or anchor
(`mkdocs build --strict`, as mkdocs.yml configures it: a missing page or heading fails the build)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _nav_pages(nav: Any) -> list[str]:
    """Every page file named in mkdocs.yml's nav, in order (nested sections included)."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def _nav() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return _nav_pages(config["nav"])


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    print(output)
    assert result.returncode == 0, output
    assert (tmp_path / "site" / "index.html").is_file(), output


def test_the_readme_is_a_landing_page_under_10_kb() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size < 10_000, f"README.md is {size} bytes: move reference text to docs/"


def test_every_page_of_the_nav_exists_and_every_page_is_in_it() -> None:
    nav = _nav()
    assert nav and nav[0] == "index.md", nav
    assert [page for page in nav if not (DOCS / page).is_file()] == []
    assert len(nav) == len(set(nav)), nav
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert pages - set(nav) == set(), "pages under docs/ that the nav does not list"


def test_the_readme_links_to_files_that_exist() -> None:
    """The README's relative links (to the docs pages and images) work on a repository browser too."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    relative = [target for target in targets if not re.match(r"[a-z]+://", target)]
    assert relative, "the README links to no page of docs/"
    assert [target for target in relative if not (ROOT / target).exists()] == []
