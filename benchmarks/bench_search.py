"""Time the search stage's core on RegMix's own setting: 1M simulated Pile mixtures.

Fits the `regression` section of params.yaml (LightGBM by default, early-stopped, with its
bootstrap members) on the 512 released RegMix 1M-proxy runs, target pile_cc, saves and loads
it as the fit and search stages do, compiles it with lleaves (LightGBM: the cache under
$REGMIX_CACHE/lleaves, built on a miss), then times `regmix.choose.search.search` with and without
the members on REGMIX_THREADS threads. Prints one JSON line, with the load average.

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
from typing import Any, Callable

from regmix import runtime
from regmix.choose.regression import fit_regressor, load_regressor, read_released, save_regressor
from regmix.choose.sampling import pile_generator
from regmix.choose.search import search
from regmix.config import RegressionConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import load_params
from regmix.target import Target

TARGET = Target.parse("pile_cc")


def timed(step: Callable[[], Any]) -> tuple[Any, float]:
    """What `step()` returns, and the seconds it took."""
    start = time.perf_counter()
    value = step()
    return value, round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="simulated mixtures")
    parser.add_argument("--released", default="../shared/regmix_data", help="folder of RegMix's released CSVs")
    parser.add_argument("--model", help="regression.model to fit instead of params.yaml's (e.g. linear)")
    parser.add_argument("--no-compile", action="store_true", help="predict with LightGBM itself, not lleaves")
    args = parser.parse_args()

    params = load_params()
    folder = Path(args.released)
    table = read_released(folder / "train_mixture_1m.csv", folder / "train_pile_loss_1m.csv")
    reg_cfg = from_dict(RegressionConfig, params["regression"], "regression.")
    if args.model and args.model != reg_cfg.model:
        reg_cfg = dataclasses.replace(reg_cfg, model=args.model, params={})
    y = table.target_values(TARGET)
    fitted, fit_s = timed(lambda: fit_regressor(table.weights, y, table.domains, TARGET, reg_cfg, seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        _, save_s = timed(lambda: save_regressor(fitted, tmp))
        model, load_s = timed(lambda: load_regressor(tmp, TARGET, table.domains))
    compile_s = None if args.no_compile else timed(model.compile)[1]

    # RegMix's swarm: its prior and caps (1.5 epochs of its 25B-token large run: 15x the share)
    gen = pile_generator(dataclasses.replace(from_dict(SampleConfig, params["sample"], "sample."), max_epochs=1.5))
    cfg = dataclasses.replace(from_dict(SearchConfig, params["search"], "search."), n_simulations=args.n)
    threads = runtime.threads()
    alone = dataclasses.replace(model, members=[])
    # The base model alone: RegMix's top-k rule (the others need the bootstrap members).
    top_k = dataclasses.replace(cfg, rule="top_k")
    _, main_s = timed(lambda: search(alone, gen, top_k, seed=0, threads=threads))
    _, all_s = timed(lambda: search(model, gen, cfg, seed=0, threads=threads))

    print(
        json.dumps(
            {
                "bench": "search",
                "n_simulations": args.n,
                "model": reg_cfg.model,
                "trees": getattr(model.base, "best_iteration", None),
                "compiled": getattr(model.base, "compiled", None) is not None,
                "members": len(model.members),
                "threads": threads,
                "chunk_size": cfg.chunk_size,
                "fit_seconds": fit_s,
                "save_seconds": save_s,
                "load_seconds": load_s,
                "compile_seconds": compile_s,
                "seconds": main_s,
                "seconds_with_members": all_s,
                "load_average": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
