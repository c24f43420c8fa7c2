"""What the proxies would need to tell `regmix` from `best_proxy`: more proxies, or more seeds.

On the targets with interior optima the large runs put `regmix` and `best_proxy` a few hundredths
of a nat apart. Per target (the demo's and each recorded in benchmarks/results/interior_targets/):

- the fit's error against the noise-free proxy loss, e(n) = sqrt(CV RMSE^2 - sigma^2), sigma the
  proxies' seed std of the target (from the replicates), on random subsets of n proxies of the
  committed swarm (cross-validated as the fit does: an aggregate term by term where
  `regression.per_term`), and the power law e(n) = a n^-b fitted through them;
- the stake: `regmix` minus `best_proxy` at the large scale, from the target's record with the most
  large-run seeds (bench_large_targets.most_seeded), brought to the proxies' scale by the slope of
  the compared mixtures' large losses on their predicted proxy losses;
- the proxies the fit would need to separate two mixtures that far apart (1.645 sqrt(2) e(n) at
  most: 95% one-sided, two independent errors), extrapolated along the power law; the seeds a
  mixture would need to measure it directly, at each scale (80% power by a t-test at Holm's first
  threshold over the run's comparisons, as the verdict tests it);
- against `uniform` and `prior`: the gain the regression predicted for `regmix`, how likely it is
  real by the fit's own pair scale (regmix.choose.regression.fitted.pair_confidence), the gain the
  large runs measured, and the seeds a mixture that would tell the two apart at the large scale.

    .venv/bin/python -m benchmarks.bench_swarm_size [--out benchmarks/results/swarm_size.json]
    # needs the committed run's results/ and records; about 6 minutes on 2 cores
    .venv/bin/python -m benchmarks.bench_swarm_size --table benchmarks/results/swarm_size.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, t

from benchmarks.bench_large_targets import evaluation_file, experiment_records, interior_records
from regmix.choose.noise import seed_noise
from regmix.choose.regression import proxy_table
from regmix.choose.regression.fitted import cross_validate_target
from regmix.choose.regression.terms import fitted_terms
from regmix.compose import composed
from regmix.config import RegressionConfig, from_dict
from regmix.files import load_params, write_json
from regmix.tables import read_csv
from regmix.target import Target, run_target

SIZES = (16, 24, 32, 48, 64)
DRAWS = 5  # random subsets (and CV splits) per size
RESOLVED = norm.ppf(0.95) * math.sqrt(2)  # a predicted difference this many e(n) apart is real at 95%
CHEAP = ("uniform", "prior")


def seeds_needed(std: float, difference: float, comparisons: int) -> int | None:
    """Seeds per mixture for 80% power against `difference` by a two-sided t-test at Holm's first
    threshold over `comparisons` (5% / comparisons), both mixtures with seed std `std`: the fewest n
    with n >= 2 (t_alpha + t_power)^2 (std / difference)^2 at 2n - 2 degrees of freedom."""
    if difference <= 0:
        return None
    alpha = 0.05 / comparisons

    def enough(n: int) -> bool:
        return n >= 2 * (t.ppf(1 - alpha / 2, 2 * n - 2) + t.ppf(0.8, 2 * n - 2)) ** 2 * (std / difference) ** 2

    # the normal quantiles' answer is a lower bound (t's are wider): start there
    n = max(2, math.ceil(2 * (norm.ppf(1 - alpha / 2) + norm.ppf(0.8)) ** 2 * (std / difference) ** 2))
    while not enough(n):
        n += 1
    return n


def targets(root: Path) -> dict[str, tuple[list[str], str, Path]]:
    """name -> (overrides, the record with the most large-run seeds, its evaluation): the demo's
    target, then each recorded interior target."""
    records = experiment_records(root)
    found = {}
    for name, (folder, record) in interior_records(root).items():
        experiment = folder / "experiment.json"
        overrides = json.loads(experiment.read_text())["overrides"] if experiment.exists() else []
        found[name] = (overrides, record, evaluation_file(records[record]))
    return found


def fit_error(
    W: np.ndarray,
    y: np.ndarray,
    terms: tuple[pd.DataFrame, dict[str, float] | None, Target],
    sigma: float,
    cfg: RegressionConfig,
    rng: np.random.Generator,
) -> dict:
    """e(n) per swarm size: the mean over DRAWS subsets of sqrt(max(CV RMSE^2 - sigma^2, 0)); `terms`
    (scores, fitted terms, target) cross-validate an aggregate term by term as the fit does."""
    scores, columns, target = terms
    curve = {}
    for n in (s for s in SIZES if s <= len(y)):
        rmse = []
        for draw in range(DRAWS):
            rows = rng.choice(len(y), n, replace=False)
            oof = cross_validate_target(W[rows], y[rows], scores.iloc[rows], columns, target, cfg, draw)
            rmse.append(float(np.sqrt(np.mean((oof - y[rows]) ** 2))))
        errors = [math.sqrt(max(r**2 - sigma**2, 0.0)) for r in rmse]
        curve[n] = {"cv_rmse": float(np.mean(rmse)), "error": float(np.mean(errors))}
    return curve


def power_law(curve: dict[int, dict[str, float]]) -> tuple[float, float] | None:
    """(a, b) of e(n) = a n^-b, least squares in log-log; None when the error does not fall with n."""
    points = [(n, c["error"]) for n, c in curve.items() if c["error"] > 0]
    if len(points) < 2:
        return None
    slope, intercept = np.polyfit(np.log([n for n, _ in points]), np.log([e for _, e in points]), 1)
    return (float(np.exp(intercept)), float(-slope)) if slope < 0 else None


def scale_slope(evaluation: dict[str, Any]) -> float:
    """d(large loss) / d(predicted proxy loss) over the compared mixtures (least squares)."""
    rows = [v for k, v in evaluation.items() if k != "summary" and v.get("predicted") is not None]
    predicted = np.array([r["predicted"] for r in rows])
    measured = np.array([r["target_loss"] for r in rows])
    return float(np.polyfit(predicted, measured, 1)[0])


def against_cheap(evaluation: dict[str, Any], pair_scale: float, rival: str, comparisons: int) -> dict[str, Any]:
    """`regmix` against a cheap baseline: the gain the regression predicted (the rival's predicted loss
    minus `regmix`'s) and the probability that it is real, the gain measured at the large scale, and the
    seeds a mixture it would take to tell the two apart (`seeds_needed`)."""
    vs = evaluation[rival]["vs_regmix"]
    predicted_gain = evaluation[rival]["predicted"] - evaluation["regmix"]["predicted"]
    std = max(evaluation["regmix"]["seed_std"], evaluation[rival]["seed_std"])
    return {
        "predicted_gain": predicted_gain,
        "probability": float(norm.cdf(predicted_gain / pair_scale)),
        "large_gain": vs["difference"],
        "large_gain_ci95": vs["ci95"],
        "large_gain_verdict": vs["verdict"],
        "large_seeds_needed": seeds_needed(std, abs(vs["difference"]), comparisons),
    }


def measure(
    name: str, overrides: list[str], record: str, evaluation_path: Path, root: Path, seed: int = 0
) -> dict[str, Any]:
    """One target's row (see the module docstring)."""
    params = composed(overrides) if overrides else load_params(root / "params.yaml")
    swarm, again = read_csv(root / "results/proxies.csv"), read_csv(root / "results/proxy_replicates.csv")
    table = proxy_table(swarm, "results/proxies.csv")
    target = run_target(params, table.domains, swarm)
    y = table.target_values(target)
    sigma = seed_noise(swarm, again, target)["target_std"]
    cfg = from_dict(RegressionConfig, params["regression"])
    columns = fitted_terms(target, table.scores, table.source, cfg)
    curve = fit_error(table.weights, y, (table.scores, columns, target), sigma, cfg, np.random.default_rng(seed))
    law = power_law(curve)

    evaluation = json.loads(evaluation_path.read_text())
    vs = evaluation["best_proxy"]["vs_regmix"]
    large_gap = abs(vs["difference"])
    slope = scale_slope(evaluation)
    proxy_gap = large_gap / slope if slope > 0 else None
    needed = None
    if law and proxy_gap:
        a, b = law
        needed = (RESOLVED * a / proxy_gap) ** (1 / b)
    large_std = max(evaluation["regmix"]["seed_std"], evaluation["best_proxy"]["seed_std"])
    comparisons = sum(1 for k, v in evaluation.items() if k != "summary" and v.get("vs_regmix"))
    pair_scale = json.loads((evaluation_path.parent / "fit.json").read_text())["resolution"]["pair_scale"]
    return {
        "name": name,
        "record": record,
        "target": target.name,
        "per_term": list(columns or ()),
        "proxies": len(y),
        "proxy_seed_std": sigma,
        "curve": {str(n): c for n, c in curve.items()},
        "power_law": None if law is None else {"a": law[0], "b": law[1]},
        "large_gap": vs["difference"],
        "large_gap_ci95": vs["ci95"],
        "large_gap_verdict": vs["verdict"],
        "scale_slope": slope,
        "proxy_gap": proxy_gap,
        "proxies_needed": needed,
        "comparisons": comparisons,
        "proxy_seeds_needed": seeds_needed(sigma, proxy_gap or 0.0, comparisons),
        "large_seed_std": large_std,
        "large_seeds_needed": seeds_needed(large_std, large_gap, comparisons),
        "cheap": {rival: against_cheap(evaluation, pair_scale, rival, comparisons) for rival in CHEAP},
    }


EXTRAPOLATED_AT_MOST = 100  # times the largest swarm measured: beyond it a power law says nothing


def _count(x: float | None) -> str:
    return "–" if x is None else f"{math.ceil(x):,}"


def _proxies(row: dict[str, Any]) -> str:
    """The proxies needed, or why the curve cannot say."""
    if row["power_law"] is None:
        return "none: e(n) does not fall"
    limit = EXTRAPOLATED_AT_MOST * max(map(int, row["curve"]))
    return f"> {limit:,}" if row["proxies_needed"] > limit else _count(row["proxies_needed"])


def _label(row: dict[str, Any]) -> str:
    label = f"`{row['target']}` (the demo)" if row["name"] == "the demo" else f"`{row['name']}`"
    return label if row["record"] == row["name"] else f"{label}, `{row['record']}`"


def table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table: one line per target."""
    lines = [
        "| target | proxy seed std | fit error e(n) at 16 / 32 / 64 proxies | e(n) ~ n^-b | `regmix` - `best_proxy`, large scale | at the proxies' scale | proxies to resolve it | seeds to measure it: proxies / large |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        errors = " / ".join(f"{r['curve'][str(n)]['error']:.3f}" for n in (16, 32, 64) if str(n) in r["curve"])
        law = "–" if r["power_law"] is None else f"b = {r['power_law']['b']:.2f}"
        low, high = r["large_gap_ci95"]
        gap = f"{-r['large_gap']:+.3f} [{-high:+.3f}, {-low:+.3f}]"
        proxy_gap = "–" if r["proxy_gap"] is None else f"{r['proxy_gap']:.3f}"
        lines.append(
            f"| {_label(r)} | {r['proxy_seed_std']:.3f} | {errors} | {law} | {gap} | {proxy_gap} | "
            f"{_proxies(r)} | {_count(r['proxy_seeds_needed'])} / {_count(r['large_seeds_needed'])} |"
        )
    return "\n".join(lines)


def summary(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence over the table: the fit's error against the gaps, and the seeds."""
    rows = [r for r in record["rows"] if r["proxy_gap"]]
    largest = str(max(map(int, record["rows"][0]["curve"])))
    ratios = [r["curve"][largest]["error"] / r["proxy_gap"] for r in rows]
    proxy_seeds = [r["proxy_seeds_needed"] for r in rows]
    large_seeds = [r["large_seeds_needed"] for r in rows]
    return (
        f"At {largest} proxies the fit's error against the noise-free loss is {min(ratios):.1f} to "
        f"{max(ratios):.0f} times the gap between `regmix` and `best_proxy` at the proxies' scale "
        f"({len(rows)} targets); measuring that gap directly would take {min(proxy_seeds):,} to "
        f"{max(proxy_seeds):,} seeds a mixture at the proxies' scale, and {min(large_seeds):,} to "
        f"{max(large_seeds):,} at the large scale."
    )


def _regmix_side(verdict: str) -> str:
    """A rival's verdict against `regmix` ("worse": the rival measured higher) said from `regmix`'s side."""
    return {"worse": "`regmix` better", "better": "`regmix` worse"}.get(verdict, verdict)


def cheap_table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of `regmix` against `uniform` and `prior`: one line per target and rival."""
    lines = [
        "| target | rival | gain the regression predicted (real with probability) | gain measured at the large scale | seeds a mixture to tell them apart |",
        "|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        for rival, c in r["cheap"].items():
            low, high = c["large_gain_ci95"]
            lines.append(
                f"| {_label(r)} | `{rival}` | {c['predicted_gain']:+.3f} ({c['probability']:.0%}) | "
                f"{c['large_gain']:+.3f} [{low:+.3f}, {high:+.3f}] {_regmix_side(c['large_gain_verdict'])} | "
                f"{_count(c['large_seeds_needed'])} |"
            )
    return "\n".join(lines)


def cheap_summary(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence over the cheap baselines' table."""
    cells = [c for r in record["rows"] for c in r["cheap"].values()]
    told = [c for c in cells if c["large_gain_verdict"] != "not distinguishable"]
    untold = [c for c in cells if c["large_gain_verdict"] == "not distinguishable"]
    probability = [c["probability"] for c in cells]
    seeds = [c["large_seeds_needed"] for c in untold]
    return (
        f"The regression predicted `regmix` below `uniform` and `prior` in {sum(c['predicted_gain'] > 0 for c in cells)} "
        f"of {len(cells)} comparisons, real with probability {min(probability):.0%} to {max(probability):.0%} by its "
        f"own cross-validation; the large runs told the two apart in {len(told)}"
        + (
            f", and telling the other {len(untold)} apart would take {min(seeds):,} to {max(seeds):,} seeds a mixture."
            if untold
            else "."
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/swarm_size.json")
    parser.add_argument("--table", help="print the table of a saved record and exit")
    args = parser.parse_args()
    if args.table:
        record = json.loads(Path(args.table).read_text())
        print(table(record), summary(record), cheap_table(record), cheap_summary(record), sep="\n\n")
        return
    root = Path(".")
    rows = []
    for name, (overrides, record, evaluation) in targets(root).items():
        rows.append(measure(name, overrides, record, evaluation, root))
        r = rows[-1]
        print(
            f"{name}: sigma {r['proxy_seed_std']:.3f}, e(n) {[round(c['error'], 3) for c in r['curve'].values()]}, "
            f"gap {r['large_gap']:+.3f}, proxies needed {_proxies(r)}",
            flush=True,
        )
    record = {"sizes": list(SIZES), "draws": DRAWS, "rows": rows}
    write_json(args.out, record)
    print(table(record), summary(record), cheap_table(record), cheap_summary(record), sep="\n\n")


if __name__ == "__main__":
    main()
