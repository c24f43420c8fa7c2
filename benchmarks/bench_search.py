"""Time the search stage's core on RegMix's own setting: 1M simulated Pile mixtures.

Fits the `regression` section of params.yaml (LightGBM by default, early-stopped, with its
bootstrap members) on the 512 released RegMix 1M-proxy runs, target pile_cc, saves and loads
it as the fit and search stages do (LightGBM: compiled with lleaves), then times
`regmix.search.search` with and without the members. Prints one JSON line, with the load average.

    .venv/bin/python -m benchmarks.bench_search [--n 1000000] [--model linear] [--no-compile]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from regmix.config import RegressionConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import load_params
from regmix.mixtures import PILE_TOKEN_SHARE, make_generator
from regmix.regression import fit_regressor, load_regressor, read_released, save_regressor, target_values
from regmix.search import search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="simulated mixtures")
    parser.add_argument("--released", default="../shared/regmix_data", help="folder of RegMix's released CSVs")
    parser.add_argument("--model", help="regression.model to fit instead of params.yaml's (e.g. linear)")
    parser.add_argument("--no-compile", action="store_true", help="predict with the fitted model as it is "
                        "(LightGBM's own predict), skipping the save/load that compiles it")
    args = parser.parse_args()

    params = load_params()
    folder = Path(args.released)
    table = read_released(folder / "train_mixture_1m.csv", folder / "train_pile_loss_1m.csv")
    reg_cfg = from_dict(RegressionConfig, params["regression"], "regression.")
    if args.model and args.model != reg_cfg.model:
        reg_cfg = dataclasses.replace(reg_cfg, model=args.model, params={})
    start = time.perf_counter()
    model = fit_regressor(table.weights, target_values(table, "pile_cc"), table.domains, "pile_cc", reg_cfg, seed=0)
    fit_s = time.perf_counter() - start
    save_s = None
    if not args.no_compile:
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            save_regressor(model, folder)
            save_s = time.perf_counter() - start
            model = load_regressor(folder)

    share = {d: PILE_TOKEN_SHARE[d] for d in table.domains}
    gen = make_generator(from_dict(SampleConfig, params["sample"], "sample."), share)
    cfg = dataclasses.replace(from_dict(SearchConfig, params["search"], "search."), n_simulations=args.n)

    members, model.members = model.members, []
    start = time.perf_counter()
    search(model, gen, cfg, seed=0)
    main_s = time.perf_counter() - start
    model.members = members
    start = time.perf_counter()
    search(model, gen, cfg, seed=0)
    all_s = time.perf_counter() - start

    trees = getattr(model.base, "best_iteration", None)
    compiled = getattr(model.base, "compiled", None) is not None
    print(json.dumps({
        "bench": "search", "n_simulations": args.n, "model": reg_cfg.model, "trees": trees, "compiled": compiled,
        "members": len(members), "workers": cfg.workers, "chunk_size": cfg.chunk_size,
        "fit_seconds": round(fit_s, 2), "save_seconds": save_s and round(save_s, 2),
        "seconds": round(main_s, 2), "seconds_with_members": round(all_s, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
