"""dvc.yaml declares, for every stage, each regmix module its entry point imports (transitively).

A stage whose code changed must rerun; a module missing from its deps would leave a stale
result that `dvc repro` calls up to date.
"""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import REPO

from regmix.code import closure, imports, module_file


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
    missing = sorted(
        str(f.relative_to(REPO)) for f in closure(entry_point(stage)) if not any(f == d or d in f.parents for d in deps)
    )
    assert not missing, f"stage {name} imports code that is not among its deps: {missing}"


def test_closure_follows_imports_inside_functions():
    """Guards the checker itself: regmix.mixtures imports the plotting module inside plot_swarm."""
    assert REPO / "regmix/plots.py" not in {module_file(n) for n in imports(REPO / "stages/sample.py")}
    assert REPO / "regmix/plots.py" in closure("stages.sample")
