"""fit: regress the target loss on the mixture weights of the proxies.

Reads results/proxies.csv (or the released CSV pair in regression.train_set), writes
data/regression/ (model.json + plain-text models), metrics/fit.json, results/fit_predictions.csv
and plots/fit/*.png. Cross-validation and eval sets are scored without ever touching the fit.

    python -m stages.fit [--params FILE] [--out-dir DIR]

`--out-dir` puts every output under DIR (same relative layout), so a run on another
params file (e.g. `make paper-regression`) leaves the pipeline's tracked outputs alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from regmix.config import RegressionConfig, from_dict
from regmix.files import PARAMS_FILE, load_params, run_stage, write_json
from regmix.regression import (describe, fit_and_report, plot_fit, predict_seconds, read_proxies,
                               released_pair, save_regressor)
from regmix.tables import write_csv
from regmix.target import Target

PROXIES = Path("results/proxies.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=PARAMS_FILE, help="composed params file (default params.yaml)")
    parser.add_argument("--out-dir", default=".", type=Path, help="root under which outputs are written")
    args = parser.parse_args()

    params = load_params(args.params)
    cfg = from_dict(RegressionConfig, params["regression"], "regression.")
    train = released_pair(cfg.train_set, "regression.train_set") if cfg.train_set else read_proxies(PROXIES)
    evals = {name: released_pair(spec, f"regression.eval_sets.{name}") for name, spec in cfg.eval_sets.items()}

    report = fit_and_report(train, evals, cfg, Target.parse(params["target"]), params["seed"])
    out = args.out_dir
    save_regressor(report.regressor, out / "data/regression")
    report.regressor.compile()  # warms this machine's lleaves cache for search, and times search's path
    report.metrics["predict_seconds_per_1m"] = round(predict_seconds(report.regressor, seed=params["seed"]), 3)
    write_json(out / "metrics/fit.json", report.metrics)
    write_csv(out / "results/fit_predictions.csv", report.predictions)
    plot_fit(report, train.weights, out / "plots/fit")
    print(describe(report.metrics))


if __name__ == "__main__":
    run_stage(main)
