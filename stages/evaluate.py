"""evaluate: score every trained large model; the metrics, the report and its plots.

Per mixture: target loss, validation loss per domain, downstream accuracy (and lm-eval when
configured). The report ranks `regmix` and checks that the regressor's predicted ranking
holds at the large scale (Spearman rho).
"""

from __future__ import annotations

from regmix.config import EvaluateConfig, from_dict
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.evaluation import evaluate_runs
from regmix.files import read_json, run_stage, write_json
from regmix.large import RUN_FILE
from regmix.regression import load_regressor, predict_mixtures
from regmix.report import write_report
from regmix.target import Target
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards (prepare)", models="folder of trained models (train)",
                             regressor="fitted regressor (fit)", metrics="metrics (JSON) to write",
                             report="report (markdown) to write", plots="plots folder to write")
    cfg = from_dict(EvaluateConfig, params["evaluate"], "evaluate.")
    names = params["large"]["mixtures"]
    missing = [n for n in names if not (args.models / n / RUN_FILE).exists()]
    if missing:
        raise UserError(f"no trained model for {', '.join(missing)} under {args.models}: run "
                        "`dvc repro train` first")
    target = Target.parse(params["target"])
    regressor = load_regressor(args.regressor, target, read_meta(args.tokens).domains)
    runs = {n: args.models / n for n in names}
    results = evaluate_runs(runs, args.tokens, cfg, target, params["seed"])
    predicted = predict_mixtures(regressor, {n: read_json(run / RUN_FILE)["mixture"] for n, run in runs.items()})
    write_json(args.metrics, results)
    write_report(results, predicted, target.name, args.report, args.plots)


if __name__ == "__main__":
    run_stage(main)
