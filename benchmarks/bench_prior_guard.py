"""Would the prior guard have helped? A replay on the recorded large runs of targets with interior optima.

The decision's prior guard (`search.min_confidence`) trains the prior instead of the search's
choice when the regression's probability that the choice beats the prior is below a threshold.
bench_decision cannot replay it (the prior is not among RegMix's released proxies). The
large-target records can: each recorded that probability (verify.json's decision) and trained
both `regmix` and `prior` at the large scale, so at a threshold t the guard's effect is exact
up to seed noise: where the probability is below t the large runs would have trained `prior`,
and the change is `prior`'s large loss minus `regmix`'s (negative: the guard helped).

Targets: the committed demo run's and every record under interior_targets/ and held_out_targets/
whose decision recorded the probability, one record per experiment (the same overrides but the
large-run seeds): the one with the most large-run seeds of `regmix`, then of `prior`. No run is made;
the record is `benchmarks/results/prior_guard.json`, which docs/benchmarks.md quotes.

    .venv/bin/python -m benchmarks.bench_prior_guard [--out benchmarks/results/prior_guard.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

from benchmarks.bench_large_targets import evaluation_file, experiment_records, most_seeded
from regmix.files import write_json
from regmix.statistics import spearman_interval

THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 0.95)
REPORTED = re.compile(r"below the prior, a gain that is real with probability ([0-9.]+)%")


def _probability(folder: Path) -> float | None:
    """The regression's probability that its choice beats the prior: the decision's prior_guard step, or
    (records made before the decision was recorded) the sentence of the record's report that states it."""
    decision = json.loads((folder / "verify.json").read_text()).get("decision", {})
    guard = next((s for s in decision.get("steps", []) if s["step"] == "prior_guard"), {})
    if "probability" in guard:
        return guard["probability"]
    said = REPORTED.search((folder / "report.md").read_text())
    return float(said.group(1)) / 100 if said else None


def target_row(name: str, folder: Path) -> dict[str, Any] | None:
    """What the guard would have done on one record: None where its decision recorded no probability
    or `prior` was not trained apart from `regmix`."""
    probability = _probability(folder)
    evaluation = json.loads(evaluation_file(folder).read_text())
    vs = evaluation.get("prior", {}).get("vs_regmix")
    if probability is None or vs is None:
        return None
    return {
        "name": name,
        "target": json.loads((folder / "fit.json").read_text())["target"],
        "probability": probability,
        "regmix": evaluation["regmix"]["target_loss"],
        "regmix_seeds": evaluation["regmix"]["seeds"],
        "prior": evaluation["prior"]["target_loss"],
        "prior_seeds": evaluation["prior"]["seeds"],
        "change": vs["difference"],  # prior minus regmix: what training the prior would have changed
        "change_ci95": vs["ci95"],
        "verdict": vs["verdict"],  # of prior against regmix: "better" means the prior measured lower
    }


def replay(rows: list[dict[str, Any]], thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]]:
    """Per threshold: where the guard fires, and the mean change of the trained mixture's large loss over
    all targets (0 where it does not fire) with its standard error across targets."""
    out = []
    for t in thresholds:
        changes = [r["change"] if r["probability"] < t else 0.0 for r in rows]
        fired = [r for r in rows if r["probability"] < t]
        out.append(
            {
                "threshold": t,
                "fired": [r["name"] for r in fired],
                "mean_change": statistics.fmean(changes),
                "stderr": statistics.stdev(changes) / math.sqrt(len(changes)) if len(changes) > 1 else math.nan,
                "helped": sum(r["verdict"] == "better" for r in fired),
                "hurt": sum(r["verdict"] == "worse" for r in fired),
            }
        )
    return out


def measure(root: Path = Path(".")) -> dict[str, Any]:
    """The record: each target's row, the replay at each threshold, and how well the probability ranks
    the large-scale gain over the prior (Spearman, bootstrap 95%)."""
    records = experiment_records(root)
    found = [target_row(name, records[name]) for name in most_seeded(records).values()]
    rows = sorted((r for r in found if r is not None), key=lambda r: -r["probability"])
    rho, low, high, n = spearman_interval([r["probability"] for r in rows], [r["change"] for r in rows])
    return {
        "rows": rows,
        "replay": replay(rows),
        "probability_vs_gain": {"rho": rho, "low": low, "high": high, "n": n},
    }


def _label(row: dict[str, Any]) -> str:
    return f"`{row['target']}` ({row['name']})"


def table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's per-target table."""
    lines = [
        "| target (record) | probability the choice beats the prior | `regmix`, seeds | `prior`, seeds | `prior` minus `regmix` [95%] |",
        "|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        low, high = r["change_ci95"]
        lines.append(
            f"| {_label(r)} | {r['probability']:.1%} | {r['regmix']:.3f}, {r['regmix_seeds']} | "
            f"{r['prior']:.3f}, {r['prior_seeds']} | {r['change']:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"{ {'better': 'lower', 'worse': 'higher'}.get(r['verdict'], r['verdict']) } |"
        )
    return "\n".join(lines)


def replay_table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the guard at each threshold."""
    lines = [
        "| `search.min_confidence` | fires on | mean change of the trained loss ± s.e. | distinguishably lower / higher |",
        "|---|---|---|---|",
    ]
    n = len(record["rows"])
    for r in record["replay"]:
        lines.append(
            f"| {r['threshold']:g} | {len(r['fired'])} of {n} | {r['mean_change']:+.3f} ± {r['stderr']:.3f} | "
            f"{r['helped']} / {r['hurt']} |"
        )
    return "\n".join(lines)


def summary(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence: whether any threshold helped beyond its standard error."""
    s = record["probability_vs_gain"]
    clear = [r for r in record["replay"] if r["mean_change"] + 2 * r["stderr"] < 0]
    at = ", ".join(f"{r['threshold']:g}" for r in clear)
    verdict = (
        f"a guard at {at} lowered the trained loss by more than twice its standard error"
        if clear
        else "no threshold lowered the trained loss by more than twice its standard error, so the guard stays off"
    )
    return (
        f"Over {len(record['rows'])} targets {verdict}; the probability ranks the large-scale gain over the "
        f"prior with Spearman {s['rho']:.2f} [{s['low']:.2f}, {s['high']:.2f}]."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/prior_guard.json")
    args = parser.parse_args()
    record = measure()
    write_json(args.out, record)
    print(table(record), replay_table(record), summary(record), sep="\n\n")


if __name__ == "__main__":
    main()
