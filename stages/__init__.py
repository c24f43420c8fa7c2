"""Thin stage entry points: `python -m stages.<name> <paths...>` reads its section of params.yaml,
calls the regmix library and writes its outputs. Every input and output path is an argument,
given in dvc.yaml, so each stage's I/O shows where the stage is declared."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from regmix.checks import check_params
from regmix.files import PARAMS_FILE, load_params


def arguments(doc: str, **names: str) -> tuple[argparse.Namespace, dict[str, Any]]:
    """One positional path argument per keyword (name=help), in order, and the params read
    from `--params` (default params.yaml), checked whole before any compute."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for name, help in names.items():
        parser.add_argument(name, type=Path, help=help)
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params file (default params.yaml)")
    args = parser.parse_args()
    params = load_params(args.params)
    check_params(params)
    return args, params
