"""evaluate: score every trained large model; write metrics/evaluate.json and results/report.md.

Per mixture: target loss, validation loss per domain, downstream accuracy (and lm-eval when
configured). The report ranks `regmix` and checks that the regressor's predicted ranking
holds at the large scale (Spearman rho).
"""

from __future__ import annotations

from pathlib import Path

from regmix.config import EvaluateConfig, from_dict
from regmix.errors import UserError
from regmix.evaluation import evaluate_runs, predicted_losses
from regmix.files import load_params, run_stage, write_json
from regmix.large import RUN_FILE
from regmix.regression import load_regressor
from regmix.report import write_report

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
    runs = {n: LARGE / n for n in names}
    results = evaluate_runs(runs, TOKENS, cfg, params["target"], params["seed"])
    predicted = predicted_losses(load_regressor("data/regression"), runs)
    write_json("metrics/evaluate.json", results)
    write_report(results, predicted, params["target"], "results/report.md", "plots/evaluate")


if __name__ == "__main__":
    run_stage(main)
