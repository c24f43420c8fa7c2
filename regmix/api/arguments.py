"""The Python API's arguments turned into the pipeline's own objects.

A config is its dataclass, the defaults (None) or a dict of the fields that differ from them;
the swarm's generator comes from prepare's domains table or a share; a target is spelled as
params spell it; a table is what its stage reads back from its CSV, so a step's numbers are
its stage's to the digit.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, TypeVar

import pandas as pd

from regmix.choose.regression import ProxyTable, proxy_table, read_proxies
from regmix.choose.sampling import MixtureGenerator, make_generator, swarm_generator
from regmix.config import LargeConfig, SampleConfig, from_dict
from regmix.errors import UserError
from regmix.tables import read_csv, write_csv
from regmix.target import Target

T = TypeVar("T")
Domains = Mapping[str, Any]  # prepare's domains table {domain: {train_tokens, ...}}, or a share {domain: weight}


def as_config(cls: type[T], value: T | Mapping[str, Any] | None, where: str = "") -> T:
    """A `cls` config: `value` itself, the defaults (None), or the defaults with the fields a
    dict names replaced (a nested config given as a dict changes only the fields it names;
    other dict fields, such as `RegressionConfig.params`, are replaced whole)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise UserError(f"{where or cls.__name__}: expected a {cls.__name__} or a dict, got {type(value).__name__}")
    return from_dict(cls, _over_defaults(cls(), value), where)


def _over_defaults(base: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    for key, value in changes.items():
        if dataclasses.is_dataclass(fields.get(key)) and isinstance(value, Mapping):
            value = _over_defaults(fields[key], value)
        fields[key] = value
    return fields


def generator(
    domains: Domains,
    sample_cfg: SampleConfig | Mapping[str, Any] | None,
    large_cfg: LargeConfig | Mapping[str, Any] | None,
) -> MixtureGenerator:
    """The swarm's generator: around the token share of `domains` (prepare's table, or a share
    {domain: weight}), capped at `sample.max_epochs` epochs of each domain in the large run
    (`large_cfg`: steps x batch x context), which needs the table's train tokens."""
    cfg = as_config(SampleConfig, sample_cfg, "sample.")
    if all(isinstance(d, Mapping) for d in domains.values()):
        return swarm_generator(cfg, as_config(LargeConfig, large_cfg, "large."), domains)
    return make_generator(cfg, {d: float(w) for d, w in domains.items()})


def as_target(target: Any, domains: list[str], swarm: pd.DataFrame | None) -> Target:
    """`target` as params spell it (or a Target), `mean` over `domains`, a standardised aggregate
    calibrated on `swarm` (the proxies' scores)."""
    if not isinstance(target, Target):
        target = Target.parse(target, domains=domains)
    return target.calibrate(swarm) if swarm is not None and target.standardise and target.scales is None else target


def as_proxy_table(proxies: pd.DataFrame | ProxyTable | str | Path | None) -> ProxyTable:
    """A proxies table read as the fit stage reads results/proxies.csv."""
    if isinstance(proxies, ProxyTable):
        return proxies
    if isinstance(proxies, (str, os.PathLike)):
        return read_proxies(proxies)
    if not isinstance(proxies, pd.DataFrame):
        raise UserError(
            f"proxies: expected train_swarm's DataFrame, a proxies.csv path or a ProxyTable, "
            f"got {type(proxies).__name__}"
        )
    return proxy_table(as_stored(proxies), "proxies")


def as_stored(table: pd.DataFrame) -> pd.DataFrame:
    """`table` as a stage reads it back from its CSV, so a step's numbers are its stage's to the digit."""
    with tempfile.TemporaryDirectory() as tmp:
        write_csv(Path(tmp) / "table.csv", table)
        return read_csv(Path(tmp) / "table.csv")


def as_frame(table: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A table given as a DataFrame or a CSV path."""
    return table if isinstance(table, pd.DataFrame) else read_csv(table)
