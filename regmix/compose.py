"""Compose conf/ into params.yaml exactly as `dvc exp run` does with Hydra enabled.

Usage: python -m regmix.compose [OVERRIDE ...]   e.g. `experiment=tiny` or `regression=linear`
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from dvc.utils.hydra import compose_and_dump

CONF_DIR = Path("conf")


def compose(output_file: str | Path, overrides: list[str], conf_dir: str | Path = CONF_DIR) -> None:
    """Write the Hydra composition of `conf_dir/config.yaml` with `overrides` to `output_file`."""
    compose_and_dump(str(output_file), str(Path(conf_dir).resolve()), None, "config", "", overrides)


def composed(overrides: list[str], conf_dir: str | Path = CONF_DIR) -> dict[str, Any]:
    """The params a composition with `overrides` gives, as a dict (nothing written)."""
    with tempfile.TemporaryDirectory() as tmp:
        compose(Path(tmp) / "params.yaml", overrides, conf_dir)
        return yaml.safe_load((Path(tmp) / "params.yaml").read_text())


if __name__ == "__main__":
    compose("params.yaml", sys.argv[1:])
