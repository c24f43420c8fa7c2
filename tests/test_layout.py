"""The package's layout: phases import only the shared helpers and the phases before them, and
every module and function is short enough to read in a sitting.

regmix/data -> regmix/train -> regmix/choose -> regmix/judge, each over the shared helpers
(regmix/config.py, files.py, tables.py, ...); the entry points (the CLI, the Python API, the
cost plan, the params checks) may use every phase.
"""

from __future__ import annotations

import ast

import pytest
from conftest import REPO

from regmix.code import imports

PHASES = ("data", "train", "choose", "judge")
ENTRY_POINTS = {"api", "cli", "cost", "checks", "handoff", "timings"}
PACKAGE = REPO / "regmix"
MODULE_LINES, FUNCTION_LINES = 350, 60


def layer(module: str) -> tuple[str, int]:
    """("helper", 0), ("phase", 1..4) or ("entry", 5) for a dotted module name under regmix."""
    parts = module.split(".")[1:]
    if not parts:
        return "helper", 0
    if parts[0] in PHASES:
        return "phase", PHASES.index(parts[0]) + 1
    return ("entry", len(PHASES) + 1) if parts[0] in ENTRY_POINTS else ("helper", 0)


def dotted(path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


MODULES = sorted(PACKAGE.rglob("*.py"))
STAGES = sorted((REPO / "stages").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_each_module_imports_only_what_its_layer_may(path):
    kind, level = layer(dotted(path))
    if kind == "entry":
        return
    wrong = sorted(
        name
        for name in imports(path)
        if name.startswith("regmix.") and (layer(name)[1] > level or (kind == "helper" and layer(name)[0] != "helper"))
    )
    assert not wrong, f"{dotted(path)} ({kind}) may not import {wrong}"


def test_every_phase_says_what_it_owns_and_may_import():
    for phase in PHASES:
        doc = (PACKAGE / phase / "__init__.py").read_text()
        assert doc.startswith('"""') and "May import" in doc, phase


@pytest.mark.parametrize("path", MODULES + STAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_each_module_and_function_reads_in_a_sitting(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MODULE_LINES
    long = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > FUNCTION_LINES
    }
    assert not long, f"functions over {FUNCTION_LINES} lines: {long}"
