"""evaluate: score every trained large model; write metrics/evaluate.json and results/report.md.

Per mixture: target loss, validation loss per domain, downstream accuracy (and lm-eval when
configured). The report ranks `regmix` and checks that the regressor's predicted ranking
holds at the large scale (Spearman rho).
"""

from __future__ import annotations

from pathlib import Path

from regmix.config import EvaluateConfig, from_dict
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.evaluation import evaluate_runs
from regmix.files import load_params, read_json, run_stage, write_json
from regmix.large import RUN_FILE
from regmix.regression import load_regressor, predict_mixtures
from regmix.report import write_report
from regmix.target import Target

TOKENS = Path("data/tokens")
LARGE = Path("data/large")


def main() -> None:
    params = load_params()
    cfg = from_dict(EvaluateConfig, params["evaluate"], "evaluate.")
    names = params["large"]["mixtures"]
    missing = [n for n in names if not (LARGE / n / RUN_FILE).exists()]
    if missing:
        raise UserError(f"no trained model for {', '.join(missing)} under {LARGE}: run "
                        "`dvc repro train` first")
    target = Target.parse(params["target"])
    regressor = load_regressor("data/regression", target, read_meta(TOKENS).domains)
    runs = {n: LARGE / n for n in names}
    results = evaluate_runs(runs, TOKENS, cfg, target, params["seed"])
    predicted = predict_mixtures(regressor, {n: read_json(run / RUN_FILE)["mixture"] for n, run in runs.items()})
    write_json("metrics/evaluate.json", results)
    write_report(results, predicted, target.name, "results/report.md", "plots/evaluate")


if __name__ == "__main__":
    run_stage(main)
