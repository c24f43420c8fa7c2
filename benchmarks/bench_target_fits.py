"""How well the regression fits the targets teams optimise, on the committed swarm.

Per target: the best proxy's mixture (is the optimum a corner, or a trade-off?), the fit's
cross-validated Spearman and RMSE beside the proxies' seed noise of that same target (from the
replicates), and the smallest predicted difference the fit resolves. For a target of several
terms (`mean`, a weighted mean, `zmean`) also the same folds' CV Spearman and RMSE of fitting each
term on its own and combining their out-of-fold predictions by the target's weights (and scales),
beside the fit of the aggregate itself. Targets a domain's own loss
(a corner) next to those held out of training: evaluation sets, the task likelihood, aggregates.

    .venv/bin/python -m benchmarks.bench_target_fits [--targets 'wikipedia;task:true_ending'] \\
        [--proxies results/proxies.csv --replicates results/proxy_replicates.csv] [--out FILE]
    # needs a finished run (`make demo`); seconds per target
    .venv/bin/python -m benchmarks.bench_target_fits --table benchmarks/results/target_fits.json

A target is written as params spell it, in YAML (`{aggregate: zmean, over: mean}`); targets are
separated by `;`. The JSON record (every row) goes to --out.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from regmix import api
from regmix.choose.regression import ProxyTable, proxy_table
from regmix.choose.regression.fitted import cross_validate_target, scores
from regmix.choose.regression.terms import fitted_terms
from regmix.config import RegressionConfig, from_dict
from regmix.files import load_params, write_json
from regmix.tables import read_csv
from regmix.target import Target, run_target

DEFAULT_TARGETS = ";".join(
    [
        "wikipedia",
        "mean",
        "milton",
        "task:true_ending",
        "{aggregate: zmean, over: mean}",
        "{aggregate: zmean, over: [milton, 'task:true_ending', wikipedia, python_code]}",
        "{wikipedia: 0.5, python_code: 0.5}",
        "{milton: 2, news: 1, legal: 1}",
    ]
)


def corner(mixture: dict[str, float]) -> dict[str, Any]:
    """The mixture's largest weight and how many domains get 5% or more."""
    top = max(mixture, key=mixture.get)
    return {
        "top_domain": top,
        "top_weight": round(mixture[top], 4),
        "domains_at_5pct": sum(w >= 0.05 for w in mixture.values()),
    }


def per_term_fit(table: ProxyTable, target: Target, cfg: RegressionConfig, seed: int) -> dict[str, float] | None:
    """CV scores of the target fitted term by term (regmix.choose.regression.cross_validate_target, the
    fit's folds), whatever `regression.per_term` says; None for a target of one term."""
    columns = fitted_terms(target, table.scores, table.source, replace(cfg, per_term=True))
    if columns is None:
        return None
    y = table.target_values(target)
    return scores(y, cross_validate_target(table.weights, y, table.scores, columns, target, cfg, seed))


def measure(value: Any, params: dict[str, Any], proxies: Path, replicates: Path) -> dict[str, Any]:
    swarm, again = read_csv(proxies), read_csv(replicates)
    table = proxy_table(swarm, str(proxies))
    target = run_target({**params, "target": value}, table.domains, swarm)
    # the aggregate fitted as one number; `per_term` below fits it term by term
    report = api.fit(swarm, target, {**params["regression"], "per_term": False}, params["seed"], replicates=again)
    _, best = table.best(target)
    res = report.metrics["resolution"]
    cfg = from_dict(RegressionConfig, params["regression"], "regression.")
    terms = per_term_fit(table, target, cfg, params["seed"])
    return {
        "target": target.name,
        "cv_spearman": report.metrics["cv"]["spearman"],
        "cv_rmse": res["cv_rmse"],
        "seed_std": res.get("seed_std"),
        "rmse_over_seed_std": res.get("rmse_over_seed_std"),
        "smallest_resolved_difference": res["smallest_resolved_difference"],
        "best_proxy": corner(best),
        "per_term": None if terms is None else {"cv_spearman": terms["spearman"], "cv_rmse": terms["rmse"]},
    }


def line(row: dict[str, Any]) -> str:
    b = row["best_proxy"]
    return (
        f"{row['target']:40s} CV Spearman {row['cv_spearman']:.3f}  RMSE {row['cv_rmse']:.4f}  seed std "
        f"{row['seed_std']:.4f}  resolves {row['smallest_resolved_difference']:.4f}  best proxy: "
        f"{b['top_domain']} {b['top_weight']:.2f}, {b['domains_at_5pct']} domains >= 5%"
    )


def docs_table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of a committed record (a test checks the page against it)."""
    lines = [
        "| target | CV Spearman | CV RMSE | seed std | RMSE / seed std | resolves | each term fitted: CV Spearman, RMSE | best proxy's mixture |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        b, terms = row["best_proxy"], row.get("per_term")
        per_term = "–" if terms is None else f"{terms['cv_spearman']:.2f}, {terms['cv_rmse']:.3f}"
        lines.append(
            f"| `{row['target']}` | {row['cv_spearman']:.2f} | {row['cv_rmse']:.3f} | {row['seed_std']:.3f} | "
            f"{row['rmse_over_seed_std']:.1f} | {row['smallest_resolved_difference']:.2f} | {per_term} | "
            f"{b['top_domain']} {b['top_weight']:.0%}, {b['domains_at_5pct']} domains at 5% or more |"
        )
    return "\n".join(lines)


def per_term_sentence(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence on fitting each term of an aggregate on its own."""
    rows = [r for r in record["rows"] if r.get("per_term")]
    better = sum(r["per_term"]["cv_spearman"] > r["cv_spearman"] for r in rows)
    lower = sum(r["per_term"]["cv_rmse"] < r["cv_rmse"] for r in rows)
    pairs = "; ".join(f"`{r['target']}` {r['cv_spearman']:.2f} to {r['per_term']['cv_spearman']:.2f}" for r in rows)
    return (
        f"On {better} of the {len(rows)} targets of several terms, fitting each term on its own and combining "
        f"their out-of-fold predictions by the target's weights ranked the proxies better than fitting the "
        f"aggregate (CV Spearman {pairs}), with a lower CV RMSE on {lower}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default=DEFAULT_TARGETS, help="`;`-separated targets, in YAML")
    parser.add_argument("--proxies", type=Path, default=Path("results/proxies.csv"))
    parser.add_argument("--replicates", type=Path, default=Path("results/proxy_replicates.csv"))
    parser.add_argument("--out", type=Path, help="JSON record to write")
    parser.add_argument("--table", type=Path, help="print docs/benchmarks.md's table of this record instead")
    args = parser.parse_args()
    if args.table:
        print(docs_table(json.loads(args.table.read_text())))
        return
    params = load_params("params.yaml")
    rows = []
    for text in args.targets.split(";"):
        rows.append(measure(yaml.safe_load(text), params, args.proxies, args.replicates))
        print(line(rows[-1]), flush=True)
    if args.out:
        write_json(args.out, {"proxies": str(args.proxies), "rows": rows})


if __name__ == "__main__":
    main()
