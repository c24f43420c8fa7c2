"""The mixtures compared at the large scale: each name resolved to weights, one file each.

`large.mixtures` lists names: `regmix` (the search's choice), `best_proxy` (the swarm mixture
whose proxy measured the lowest target loss: the strongest cheap alternative, the one the
regression must beat to be worth it), `uniform`, `prior` (the swarm's centre: the token share or `sample.prior`),
`target_only` and `nearest` (made without proxies: regmix.choose.baselines), any `human_mixtures` entry,
`random_<k>` (the k-th row of a seeded permutation of the proxy swarm, for the rank check) and
`proxy_<k>` (the trained proxy with the k-th lowest measured target loss: `proxy_1` is `best_proxy`;
the near-top mixtures on which rank transfer matters). Each resolved mixture is written to its own small file with the
seeds it is trained with, so a DVC item that trains it depends on that mixture alone: a new
search result changes `regmix.json` and nothing else, and only `train@regmix` reruns.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from regmix.errors import UserError
from regmix.files import read_json, write_json
from regmix.mixtures import baseline_mixtures, validate_mixture
from regmix.tables import weight_columns, write_csv

CHOSEN = "regmix"
BEST_PROXY = "best_proxy"
RANDOM_PREFIX = "random_"
PROXY_PREFIX = "proxy_"


def _rank(name: str, prefix: str, n_rows: int) -> int:
    """k of `<prefix><k>`, checked against the swarm's `n_rows`."""
    suffix = name[len(prefix) :]
    if not suffix.isdigit() or int(suffix) < 1:
        raise UserError(f"large.mixtures: {name!r} must be {prefix}<k> with k >= 1")
    if int(suffix) > n_rows:
        raise UserError(f"large.mixtures: {name} but the proxy swarm has only {n_rows} mixtures")
    return int(suffix)


def random_row(name: str, n_rows: int, seed: int) -> int:
    """Swarm row compared as `random_<k>`: the k-th of a seeded permutation of the rows.

    The k-th pick does not depend on how many random mixtures are compared, so adding
    `random_5` leaves `random_1..4` (and their trained models) as they were.
    """
    k = _rank(name, RANDOM_PREFIX, n_rows)
    return int(np.random.default_rng([seed, 0x7A11]).permutation(n_rows)[k - 1])


def resolve(
    names: Sequence[str],
    chosen: Mapping[str, float],
    ranked_proxies: Sequence[Mapping[str, float]],
    prior: Mapping[str, float],
    swarm: pd.DataFrame,
    human: Mapping[str, Mapping[str, float]] | None,
    seed: int,
    cheap: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Weights over every domain of `prior` for each name in `names`, in that order. `ranked_proxies`:
    the trained proxies' mixtures, lowest measured target loss first (ProxyTable.ranked). `cheap`: the
    cheap baselines computed for the target (regmix.choose.baselines: `target_only`, `nearest`)."""
    domains = list(prior)
    named = {
        CHOSEN: validate_mixture(chosen, domains, "the search's chosen mixture", tol=1e-4),
        BEST_PROXY: validate_mixture(ranked_proxies[0], domains, "the best proxy's mixture", tol=1e-4),
        **baseline_mixtures(prior, human),
        **{name: validate_mixture(m, domains, f"the {name} baseline", tol=1e-4) for name, m in (cheap or {}).items()},
    }
    if len(set(names)) != len(names):
        raise UserError(f"large.mixtures lists a name twice: {list(names)}")
    out = {}
    for name in names:
        if name.startswith(RANDOM_PREFIX):
            row = swarm.iloc[random_row(name, len(swarm), seed)]
            weights = {c: float(row[c]) for c in weight_columns(swarm)}
            out[name] = validate_mixture(weights, domains, f"proxy swarm mixture id {row['id']}", tol=1e-4)
        elif name.startswith(PROXY_PREFIX):
            k = _rank(name, PROXY_PREFIX, len(ranked_proxies))
            out[name] = validate_mixture(ranked_proxies[k - 1], domains, f"the {k}-th best proxy's mixture", tol=1e-4)
        elif name in named:
            out[name] = named[name]
        else:
            valid = [*named, f"{RANDOM_PREFIX}<k>", f"{PROXY_PREFIX}<k>"]
            raise UserError(f"large.mixtures: unknown mixture {name!r}; valid: {', '.join(valid)}")
    return out


def seeds_of(names: Sequence[str], seeds: int, replicate: Mapping[str, int], base: int) -> dict[str, list[int]]:
    """Training seeds of each compared mixture: `seeds` of them, or `replicate[name]` (whose names
    not compared are ignored)."""
    counts = {name: int(replicate.get(name, seeds)) for name in names}
    if min(counts.values(), default=1) < 1:
        raise UserError(f"large.seeds and large.replicate need at least 1 seed a mixture, got {counts}")
    return {name: [base + k for k in range(n)] for name, n in counts.items()}


WEIGHTS_FILE = "weights.csv"  # every compared mixture's weights side by side (a `dvc plots` chart)


RUNS_OF_FILE = "runs_of.json"  # in the train folders of a mixture whose runs are another's
SAME_WEIGHTS = 1e-6  # results/mixture.yaml's rounding: closer weights train the same runs


def shared_runs(mixtures: Mapping[str, Mapping[str, float]], seeds: Mapping[str, Sequence[int]]) -> dict[str, str]:
    """{name: `regmix`} for each other compared mixture whose large runs would be `regmix`'s trained
    again: the same weights (to SAME_WEIGHTS) and seeds among `regmix`'s. Common: the search's
    choice is often a trained proxy's mixture (`best_proxy`), or the prior it fell back to."""
    if CHOSEN not in mixtures:
        return {}
    chosen, chosen_seeds = mixtures[CHOSEN], set(seeds[CHOSEN])
    return {
        name: CHOSEN
        for name, weights in mixtures.items()
        if name != CHOSEN
        and set(seeds[name]) <= chosen_seeds
        and set(weights) == set(chosen)
        and all(abs(weights[d] - chosen[d]) <= SAME_WEIGHTS for d in chosen)
    }


def write_all(
    folder: str | Path, mixtures: Mapping[str, Mapping[str, float]], seeds: Mapping[str, Sequence[int]]
) -> None:
    """`folder/<name>.json` per mixture (weights, seeds and, for a mixture whose runs are `regmix`'s,
    `runs_of`), and `weights.csv` (`domain`, one column per mixture); files of names no longer
    compared are removed."""
    folder = Path(folder)
    shared = shared_runs(mixtures, seeds)
    for name, weights in mixtures.items():
        entry = {"name": name, "seeds": list(seeds[name]), "mixture": dict(weights)}
        write_json(folder / f"{name}.json", {**entry, "runs_of": shared[name]} if name in shared else entry)
    write_csv(folder / WEIGHTS_FILE, pd.DataFrame(mixtures).rename_axis("domain").reset_index())
    for stale in folder.glob("*.json"):
        if stale.stem not in mixtures:
            stale.unlink()


@dataclass(frozen=True)
class Compared:
    """One compared mixture as `write_all` stored it."""

    name: str
    mixture: dict[str, float]
    seeds: list[int]
    runs_of: str | None = None  # the compared mixture whose large runs are this one's (`shared_runs`)

    @property
    def trained_as(self) -> str:
        """The name its large runs are trained and stored under."""
        return self.runs_of or self.name


def read_one(path: str | Path) -> Compared:
    """The compared mixture in one file written by `write_all`."""
    data = read_json(path)
    if not isinstance(data, dict) or not {"name", "mixture", "seeds"} <= set(data):
        raise UserError(f"{path}: not a compared-mixture file (needs `name`, `seeds` and `mixture`)")
    mixture = data["mixture"]
    return Compared(
        data["name"],
        validate_mixture(mixture, list(mixture), str(path), tol=1e-4),
        [int(s) for s in data["seeds"]],
        data.get("runs_of"),
    )


def run_dir(folder: str | Path, seed: int) -> Path:
    """Where one seed's run of a compared mixture lives inside its folder."""
    return Path(folder) / f"seed_{seed}"


def remove_other_runs(folder: str | Path, seeds: Sequence[int]) -> None:
    """Delete run folders of seeds no longer asked for, so no stale result is read as current."""
    keep = {run_dir(folder, s) for s in seeds}
    for path in Path(folder).glob("seed_*"):
        if path not in keep:
            shutil.rmtree(path)


def remove_other_mixtures(folder: str | Path, names: Sequence[str]) -> list[str]:
    """Delete the folders of mixtures no longer compared (left by `train` items that a changed
    `large.mixtures` dropped, which DVC no longer knows), so no stale run sits beside current
    ones; returns their names."""
    stale = (
        sorted(p.name for p in Path(folder).iterdir() if p.is_dir() and p.name not in names)
        if Path(folder).is_dir()
        else []
    )
    for name in stale:
        shutil.rmtree(Path(folder) / name)
    return stale


def read_all(folder: str | Path, names: Sequence[str]) -> dict[str, Compared]:
    """The compared mixtures `names`, in that order, from `folder`."""
    return {name: read_one(Path(folder) / f"{name}.json") for name in names}
