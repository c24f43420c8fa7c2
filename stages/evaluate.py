"""evaluate: score every trained large model (each seed), then each compared mixture's mean and
interval, the verdict on `regmix`, the report and its plots, and the data of the comparison
charts (every mixture's validation curves side by side, predicted vs measured).

Per run: target loss, validation loss per domain, downstream accuracy (and lm-eval when
configured). Per mixture: the mean over its seeds with a 95% interval from the pooled seed
noise, and a test against `regmix` (regmix.statistics).
"""

from __future__ import annotations

from regmix.choose.mixture_files import read_all, remove_other_mixtures, run_dir
from regmix.choose.regression import load_regressor, predict_mixtures
from regmix.config import EvaluateConfig, from_dict
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.files import read_json, read_yaml, run_stage, write_json
from regmix.judge import headline
from regmix.judge.comparison import SUMMARY, out_of_fold, over_prior, summarise
from regmix.judge.evaluation import evaluate_runs
from regmix.judge.report import write_comparison, write_report
from regmix.progress import say
from regmix.tables import read_csv
from regmix.target import run_target
from regmix.train.curves import valid_curves
from regmix.train.large import HF_DIR
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        tokens="token shards (prepare)",
        models="folder of trained models (train)",
        compare="folder of compared-mixture files (verify)",
        choice="the search's mixture file (search): its confidence over the prior",
        regressor="fitted regressor (fit)",
        scores="folder of each run's scores, kept between runs: a run scored before is not scored again",
        swarm="swarm table (sample)",
        proxies="proxies table (proxies)",
        fit_predictions="fit's predictions table (fit)",
        verify="the compared mixtures measured again at the proxy scale (verify)",
        curves="folder of training curves (train); folders of mixtures no longer compared go",
        record="the evaluation's record (JSON) to write",
        report="report (markdown) to write",
        plots="plots folder to write",
        comparison="folder of the comparison charts' data to write",
        headline="its headline metrics (JSON) to write",
    )
    cfg = from_dict(EvaluateConfig, params["evaluate"], "evaluate.")
    compared = read_all(args.compare, params["large"]["mixtures"])
    stale = remove_other_mixtures(args.curves, list(compared))
    if stale:
        say(f"removed the curves of mixtures no longer compared from {args.curves}: {', '.join(stale)}")
    # a mixture whose runs are another's (compare.shared_runs) is scored on those, each run once
    runs = {(c.trained_as, s): run_dir(args.models / c.trained_as, s) for c in compared.values() for s in c.seeds}
    missing = [f"{n} (seed {s})" for (n, s), d in runs.items() if not (d / HF_DIR).exists()]
    if missing:
        raise UserError(f"no trained model for {', '.join(missing)} under {args.models}: run `dvc repro train` first")
    target = run_target(params, read_meta(args.tokens).domains, read_csv(args.proxies))
    scores = evaluate_runs(
        {f"{n}@{s}": d for (n, s), d in runs.items()}, args.tokens, cfg, target, params["seed"], args.scores
    )
    by_mixture = {c.name: {s: scores[f"{c.trained_as}@{s}"] for s in c.seeds} for c in compared.values()}

    mixtures = {c.name: c.mixture for c in compared.values()}
    regressor = load_regressor(args.regressor, target, read_meta(args.tokens).domains)
    predicted = predict_mixtures(regressor, mixtures)
    cv = read_csv(args.fit_predictions).query("set == 'cv'")
    held_out = out_of_fold(mixtures, read_csv(args.swarm), cv)
    source = {n: "out-of-fold" if n in held_out else "regressor" for n in mixtures}
    results = summarise(
        by_mixture,
        {**predicted, **held_out},
        source,
        params["seed"],
        {c.name: c.runs_of for c in compared.values() if c.runs_of},
    )
    results[SUMMARY]["over_prior"] = over_prior(read_yaml(args.choice))
    write_json(args.record, results)
    write_json(args.headline, headline.evaluate(results, results[SUMMARY]))
    write_report(results, mixtures, target.name, args.report, args.plots, read_json(args.verify))
    curves = valid_curves(
        {c.name: [run_dir(args.curves / c.trained_as, s) for s in c.seeds] for c in compared.values()}
    )
    write_comparison(args.comparison, results, curves)


if __name__ == "__main__":
    run_stage(main)
