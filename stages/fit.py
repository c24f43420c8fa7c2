"""fit: regress the target loss on the mixture weights of the proxies.

Reads the proxies table (or the released CSV pair in regression.train_set) and writes the
fitted regressor (a folder of JSON and plain-text models), its metrics, its predictions and
plots. Cross-validation and eval sets are scored without ever touching the fit. The CV error
is reported beside the proxies' seed noise (from the replicates table), with the smallest
difference between two predictions that the regression can resolve.
`make paper-regression` runs it on another params file with outputs elsewhere.
"""

from __future__ import annotations

from regmix.choose.noise import seed_noise
from regmix.choose.regression import (
    describe,
    fit_and_report,
    plot_fit,
    predict_seconds,
    read_proxies,
    record_seed_noise,
    released_pair,
    save_regressor,
)
from regmix.config import RegressionConfig, from_dict
from regmix.files import run_stage, write_json
from regmix.judge import headline
from regmix.tables import read_csv, write_csv
from regmix.target import run_target
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        proxies="proxies table (proxies)",
        replicates="replicates table (proxies; unused with regression.train_set)",
        regressor="regressor folder to write",
        record="the fit's record (JSON) to write",
        predictions="predictions table (CSV) to write",
        plots="plots folder to write",
        headline="its headline metrics (JSON) to write",
    )
    cfg = from_dict(RegressionConfig, params["regression"], "regression.")
    train = released_pair(cfg.train_set, "regression.train_set") if cfg.train_set else read_proxies(args.proxies)
    evals = {name: released_pair(spec, f"regression.eval_sets.{name}") for name, spec in cfg.eval_sets.items()}

    target = run_target(params, train.domains, train.scores if cfg.train_set else read_csv(args.proxies))
    report = fit_and_report(train, evals, cfg, target, params["seed"])
    noise = None if cfg.train_set else seed_noise(read_csv(args.proxies), read_csv(args.replicates), target)
    record_seed_noise(report, noise and noise.get("target_std"))
    save_regressor(report.regressor, args.regressor)
    report.regressor.compile()  # warms this machine's lleaves cache for search, and times search's path
    report.metrics["predict_seconds_per_1m"] = round(predict_seconds(report.regressor, seed=params["seed"]), 3)
    write_json(args.record, report.metrics)
    write_json(args.headline, headline.fit(report.metrics))
    write_csv(args.predictions, report.predictions)
    plot_fit(report, train.weights, args.plots)
    print(describe(report.metrics))


if __name__ == "__main__":
    run_stage(main)
