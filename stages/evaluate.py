"""evaluate: score every trained large model; write metrics/evaluate.json and results/report.md.

Per mixture: target loss, validation loss per domain, downstream accuracy (and lm-eval when
configured). The report ranks `regmix` and checks that the regressor's predicted ranking
holds at the large scale (Spearman rho).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regmix.config import EvaluateConfig, from_dict
from regmix.errors import UserError
from regmix.evaluation import evaluate_runs
from regmix.io import load_params, read_json, run_stage, write_json
from regmix.large import HF_DIR, RUN_FILE
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
    results = evaluate_runs({n: LARGE / n / HF_DIR for n in names}, TOKENS, cfg,
                            params["target"], params["seed"])
    regressor = load_regressor("data/regression")
    mixtures = {n: read_json(LARGE / n / RUN_FILE)["mixture"] for n in names}
    weights = np.array([[mixtures[n].get(d, 0.0) for d in regressor.domains] for n in names])
    predicted = dict(zip(names, map(float, regressor.predict(weights))))
    write_json("metrics/evaluate.json", results)
    write_report(results, predicted, params["target"], "results/report.md", "plots/evaluate")


if __name__ == "__main__":
    run_stage(main)
