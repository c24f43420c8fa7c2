"""dvc.yaml declares, for every stage, each regmix module its entry point imports (transitively).

A stage whose code changed must rerun; a module missing from its deps would leave a stale
result that `dvc repro` calls up to date.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGES = ("regmix", "stages")


def module_file(name: str) -> Path | None:
    """The source file of a dotted module name inside the repository, or None."""
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> set[str]:
    """Dotted names of the repository's modules imported anywhere in `path` (functions too)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES and module_file(n)}
    return found


def closure(entry: str) -> set[Path]:
    """Files of every repository module `entry` imports, directly or through others."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imports(path))
    return seen


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def entry_point(stage: dict) -> str:
    cmd = stage["do"]["cmd"] if "do" in stage else stage["cmd"]
    match = re.search(r"python -m (stages\.\w+)", cmd)
    assert match, f"not a stage entry point: {cmd}"
    return match.group(1)


def declared(stage: dict) -> list[str]:
    return (stage["do"] if "do" in stage else stage)["deps"]


@pytest.mark.parametrize("name", list(stages()))
def test_every_imported_module_is_a_dependency(name):
    stage = stages()[name]
    deps = [REPO / d for d in declared(stage)]
    missing = sorted(str(f.relative_to(REPO)) for f in closure(entry_point(stage))
                     if not any(f == d or d in f.parents for d in deps))
    assert not missing, f"stage {name} imports code that is not among its deps: {missing}"


def test_closure_follows_imports_inside_functions():
    """Guards the checker itself: regmix.mixtures imports the plotting module inside plot_swarm."""
    assert REPO / "regmix/plots.py" not in {module_file(n) for n in imports(REPO / "stages/sample.py")}
    assert REPO / "regmix/plots.py" in closure("stages.sample")
