"""Small file helpers shared by every stage: params, atomic writes, JSON/YAML tables."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from regmix.errors import UserError

PARAMS_FILE = "params.yaml"


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict[str, Any]:
    """Read the composed params file (what `dvc exp run` writes from conf/)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the repository root, or `make params`")
    with path.open() as f:
        return yaml.safe_load(f) or {}


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    A killed run therefore never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks (checkpoints are GBs); None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def existing(path: str | os.PathLike) -> Path:
    """`path` as a Path, or a UserError saying which earlier stage's output is missing."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run the stage that writes it first")
    return path


def read_json(path: str | os.PathLike) -> Any:
    with existing(path).open() as f:
        return json.load(f)


def write_yaml(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_yaml(path: str | os.PathLike) -> Any:
    with existing(path).open() as f:
        return yaml.safe_load(f)


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage entry point: a UserError becomes one clear line and exit code 1."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def no_nan(obj: Any) -> Any:
    """nan -> None all through `obj` (JSON has no nan; DVC's metrics readers refuse it)."""
    if isinstance(obj, dict):
        return {k: no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [no_nan(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
