"""Benchmarks: speed goals and the measurements behind defaults (never timed tests).

Several replay decisions on RegMix's released swarm (`released_swarm`), where every proxy's
true validation losses are known."""

from __future__ import annotations

import argparse
from pathlib import Path

from regmix.regression import ProxyTable, read_released

RELEASED = "../shared/regmix_data"  # beside the project: RegMix's released 1M-parameter proxies


def add_released_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--released", default=RELEASED, help="folder of RegMix's released CSVs")


def released_swarm(folder: str | Path) -> tuple[ProxyTable, ProxyTable]:
    """RegMix's 512 training and 256 test proxies: mixture weights and Pile validation losses."""
    folder = Path(folder)
    return (read_released(folder / "train_mixture_1m.csv", folder / "train_pile_loss_1m.csv"),
            read_released(folder / "test_mixture_1m.csv", folder / "test_pile_loss_1m.csv"))
