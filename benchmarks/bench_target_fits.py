"""How well the regression fits the targets teams optimise, on the committed swarm.

Per target: the best proxy's mixture (is the optimum a corner, or a trade-off?), the fit's
cross-validated Spearman and RMSE beside the proxies' seed noise of that same target (from the
replicates), and the smallest predicted difference the fit resolves. Targets a domain's own loss
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
from pathlib import Path
from typing import Any

import yaml

from regmix import api
from regmix.choose.regression import proxy_table
from regmix.files import load_params, write_json
from regmix.tables import read_csv
from regmix.target import run_target

DEFAULT_TARGETS = "wikipedia;mean;task:true_ending;{aggregate: zmean, over: mean}"


def corner(mixture: dict[str, float]) -> dict[str, Any]:
    """The mixture's largest weight and how many domains get 5% or more."""
    top = max(mixture, key=mixture.get)
    return {
        "top_domain": top,
        "top_weight": round(mixture[top], 4),
        "domains_at_5pct": sum(w >= 0.05 for w in mixture.values()),
    }


def measure(value: Any, params: dict[str, Any], proxies: Path, replicates: Path) -> dict[str, Any]:
    swarm, again = read_csv(proxies), read_csv(replicates)
    table = proxy_table(swarm, str(proxies))
    target = run_target({**params, "target": value}, table.domains, swarm)
    report = api.fit(swarm, target, params["regression"], params["seed"], replicates=again)
    _, best = table.best(target)
    res = report.metrics["resolution"]
    return {
        "target": target.name,
        "cv_spearman": report.metrics["cv"]["spearman"],
        "cv_rmse": res["cv_rmse"],
        "seed_std": res.get("seed_std"),
        "rmse_over_seed_std": res.get("rmse_over_seed_std"),
        "smallest_resolved_difference": res["smallest_resolved_difference"],
        "best_proxy": corner(best),
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
        "| target | CV Spearman | CV RMSE | seed std | RMSE / seed std | resolves | best proxy's mixture |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in record["rows"]:
        b = row["best_proxy"]
        lines.append(
            f"| `{row['target']}` | {row['cv_spearman']:.2f} | {row['cv_rmse']:.3f} | {row['seed_std']:.3f} | "
            f"{row['rmse_over_seed_std']:.1f} | {row['smallest_resolved_difference']:.2f} | "
            f"{b['top_domain']} {b['top_weight']:.0%}, {b['domains_at_5pct']} domains at 5% or more |"
        )
    return "\n".join(lines)


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
