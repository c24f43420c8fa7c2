"""The repository's own modules that a module imports, and a digest of their source.

dvc.yaml declares each stage's import closure as its code deps (tests check it); a result
cached outside DVC (evaluate's scores) keys on the digest of the code that computed it, so a
change to that code recomputes it and a change elsewhere does not.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("regmix", "stages")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of a dotted module name inside the repository, or None."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names of the repository's modules imported anywhere in `path` (functions too)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES and module_file(n, root)}
    return found


def closure(entry: str, root: Path = ROOT) -> set[Path]:
    """Files of every repository module `entry` imports, directly or through others."""
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        parts = todo.pop().split(".")
        # importing a.b.c runs a/__init__.py and a/b/__init__.py too
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]), root)
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imports(path, root))
    return seen


def code_digest(entry: str, root: Path = ROOT) -> str:
    """sha256 over the path and source of every module in `entry`'s closure."""
    h = hashlib.sha256()
    for path in sorted(closure(entry, root)):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
