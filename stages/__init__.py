"""Thin stage entry points: `python -m stages.<name> <paths...>` reads its section of params.yaml,
calls the regmix library and writes its outputs. Every input and output path is an argument,
given in dvc.yaml, so each stage's I/O shows where the stage is declared."""

from __future__ import annotations

import argparse
from pathlib import Path


def paths(doc: str, **names: str) -> argparse.Namespace:
    """Parse one positional path argument per keyword (name=help), in order."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for name, help in names.items():
        parser.add_argument(name, type=Path, help=help)
    return parser.parse_args()
