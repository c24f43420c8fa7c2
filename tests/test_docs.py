"""The docs: `docs/` builds with `mkdocs build --strict` (a broken link or anchor between pages
fails), every page is in the nav, the README stays a first read that links into them, and the
Python API page shows the example `tests/test_api.py` runs."""

import os
import re
import subprocess
import sys

import yaml
from conftest import REPO

from regmix import api

README_LIMIT = 15_000  # characters (bytes, as `wc -c` counts them)


def nav_pages(nav: list) -> set[str]:
    """The page files a MkDocs nav names, sections included."""
    pages = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr
    assert (site / "index.html").is_file() and (site / "benchmarks" / "index.html").is_file()


def test_every_page_is_in_the_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    docs = REPO / config["docs_dir"]
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    assert pages == nav_pages(config["nav"])


def test_readme_is_a_first_read_that_links_into_the_docs():
    readme = REPO / "README.md"
    assert len(readme.read_bytes()) <= README_LIMIT, f"README.md is over {README_LIMIT:,} characters"
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme.read_text())
    assert links and all((REPO / link).is_file() for link in links), links


def test_python_api_page_shows_the_tested_example():
    def block(text: str) -> str:
        found = re.findall(r"```python\n(.*?)```", text, re.S)
        assert len(found) == 1
        return found[0]

    assert block((REPO / "docs/python-api.md").read_text()) == block(api.__doc__)


def test_the_layout_page_names_every_module():
    """docs/development.md's layout lists each module and package of regmix/ (but api/ and handoff/'s own)."""
    page = (REPO / "docs/development.md").read_text()
    package = REPO / "regmix"
    names = {p.name for p in package.glob("*.py")} | {
        f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()
    }
    for phase in ("choose", "data", "judge", "train"):
        names |= {p.name for p in (package / phase).glob("*.py")}
    missing = sorted(n for n in names - {"__init__.py"} if f" {n} " not in page)
    assert not missing, f"docs/development.md's layout does not name {missing}"
