"""The decision's steps replayed on the recorded large runs of targets with interior optima.

bench_decision replays the steps on RegMix's released proxies, where the prior's loss is unknown and
nothing is trained at a larger scale. The large-target records answer both: each kept the
regression's probability that its choice beats the prior (the prior guard's evidence), `verify`'s
fresh proxy-scale seeds of the choice and its rivals (the verified pick's), and the large runs of
all of them. Where the rule decided (the large runs trained the search's choice as `regmix`), what
another step would have trained was trained too, so its effect is measured up to seed noise, as
that mixture's large loss minus `regmix`'s (negative: the step would have helped):

  prior guard at t   (`search.min_confidence`) trains `prior` where the probability is below t
  verified lowest    trains the verified mixture with the lowest proxy-scale mean, distinguishable
                     or not (the default asks for a distinguishable difference: `verify.choose`)

Targets: the committed demo run's and every record under interior_targets/ and held_out_targets/
whose rule decided, one record per experiment (the same overrides but the large-run seeds): the
one with the most large-run seeds of `regmix`, then of `prior`.

The verified pick as the pipeline makes it (`verify.choose`: only a distinguishably lower mixture
replaces the choice) with another check than the experiment ran: more fresh seeds (`verify.seeds`)
or a scale nearer the large run's (`verify.model`, `verify.optim`). Each run up to `verify` under
verify_only/ (`bench_large_targets --verify-only`) shares its fit and search with the experiment of
the same overrides (but `verify.*`) on the same machine, whose large runs measure the mixture it
picks.

No run is made; the record is `benchmarks/results/decision_large.json`, which docs/benchmarks.md
quotes.

    .venv/bin/python -m benchmarks.bench_decision_large [--out benchmarks/results/decision_large.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

import scipy.stats

from benchmarks.bench_large_targets import (
    VERIFY_RECORDS,
    evaluation_file,
    experiment_key,
    experiment_records,
    most_seeded,
)
from regmix.files import write_json
from regmix.statistics import spearman_interval

THRESHOLDS = (0.6, 0.7, 0.8, 0.9, 0.95)
REPORTED = re.compile(r"below the prior, a gain that is real with probability ([0-9.]+)%")
SAID = {"better": "lower", "worse": "higher"}  # a rival's verdict against regmix, as its loss reads


def _probability(verify: dict[str, Any], folder: Path) -> float | None:
    """The regression's probability that its choice beats the prior: the decision's prior_guard step, or
    (records made before the decision was recorded) the sentence of the record's report that states it."""
    guard = next((s for s in verify.get("decision", {}).get("steps", []) if s["step"] == "prior_guard"), {})
    if "probability" in guard:
        return guard["probability"]
    said = REPORTED.search((folder / "report.md").read_text())
    return float(said.group(1)) / 100 if said else None


def _versus(evaluation: dict[str, Any], name: str) -> dict[str, Any]:
    """`name`'s large loss minus `regmix`'s, its interval and verdict (0 where it is `regmix`)."""
    if name == "regmix":
        return {"change": 0.0, "change_ci95": [0.0, 0.0], "verdict": "same runs"}
    vs = evaluation[name]["vs_regmix"]
    return {"change": vs["difference"], "change_ci95": vs["ci95"], "verdict": vs["verdict"]}


def target_row(name: str, folder: Path) -> dict[str, Any] | None:
    """What each step would have trained on one record, and how it measured: None where the rule did not
    decide, the probability was not recorded, or `prior` was not trained apart from `regmix`."""
    verify = json.loads((folder / "verify.json").read_text())
    evaluation = json.loads(evaluation_file(folder).read_text())
    probability = _probability(verify, folder)
    # records made before the decision was recorded: the rule decided where the check kept `regmix`
    rule = verify.get("decision", {}).get("decided_by", "rule" if verify["choice"]["mixture"] == "regmix" else "")
    if probability is None or rule != "rule" or "vs_regmix" not in evaluation.get("prior", {}):
        return None
    verified = verify["mixtures"]
    lowest = min(verified, key=lambda m: verified[m]["measured"])
    return {
        "name": name,
        "target": json.loads((folder / "fit.json").read_text())["target"],
        "probability": probability,
        "regmix": evaluation["regmix"]["target_loss"],
        "regmix_seeds": evaluation["regmix"]["seeds"],
        "prior": evaluation["prior"]["target_loss"],
        "prior_seeds": evaluation["prior"]["seeds"],
        "guard": _versus(evaluation, "prior"),
        "lowest": lowest,
        "lowest_at_proxy_scale": verified[lowest]["measured"] - verified["regmix"]["measured"],
        "verified_lowest": _versus(evaluation, lowest),
    }


def check_row(name: str, folder: Path, base: str, base_folder: Path) -> dict[str, Any]:
    """A run up to `verify` with another check (`folder`): the mixture its verified pick trains, and that
    mixture's large loss minus `regmix`'s in the experiment it shares the fit and search with (`base`)."""
    verify = json.loads((folder / "verify.json").read_text())
    base_verify = json.loads((base_folder / "verify.json").read_text())
    if not math.isclose(verify["mixtures"]["regmix"]["predicted"], base_verify["mixtures"]["regmix"]["predicted"]):
        raise ValueError(f"{name}: its search chose another mixture than {base}'s")
    evaluation = json.loads(evaluation_file(base_folder).read_text())
    picked, lowest = verify["choice"]["mixture"], verify["choice"]["lowest"]
    vs = verify["mixtures"][lowest].get("vs_regmix", {})
    both = [m for m in verify["mixtures"] if m in evaluation]  # how the check orders them, as the large runs do?
    order = scipy.stats.spearmanr(
        [verify["mixtures"][m]["measured"] for m in both], [evaluation[m]["target_loss"] for m in both]
    ).statistic
    return {
        "name": name,
        "base": base,
        "target": json.loads((folder / "fit.json").read_text())["target"],
        "seeds": verify["seeds"],
        "scale": verify["scale"],
        "base_seeds": base_verify["seeds"],
        "lowest": lowest,
        "lowest_in_check": vs.get("difference", 0.0),
        "lowest_p_holm": vs.get("p_holm"),
        "picked": picked,
        "verified_pick": _versus(evaluation, picked),
        "lowest_large": _versus(evaluation, lowest),
        "order": {"spearman": float(order), "mixtures": len(both)},
    }


def check_rows(root: Path = Path(".")) -> list[dict[str, Any]]:
    """check_row of each run under verify_only/ whose experiment has large runs."""
    records = experiment_records(root)
    chosen = most_seeded(records)
    rows = []
    for folder in sorted(p for p in (root / VERIFY_RECORDS).glob("*") if (p / "verify.json").exists()):
        key = tuple(k for k in experiment_key(folder) if not k.lstrip("+").startswith("verify."))
        if key in chosen:
            rows.append(check_row(folder.name, folder, chosen[key], records[chosen[key]]))
    return rows


def _arm(rows: list[dict[str, Any]], takes: list[bool], step: str) -> dict[str, Any]:
    """Where a step fires, and the mean change of the trained large loss over every target (0 where it
    does not fire) with its standard error across targets."""
    changes = [r[step]["change"] if fire else 0.0 for r, fire in zip(rows, takes)]
    fired = [r for r, fire in zip(rows, takes) if fire]
    return {
        "fired": [r["name"] for r in fired],
        "mean_change": statistics.fmean(changes),
        "stderr": statistics.stdev(changes) / math.sqrt(len(changes)) if len(changes) > 1 else math.nan,
        "helped": sum(r[step]["verdict"] == "better" for r in fired),
        "hurt": sum(r[step]["verdict"] == "worse" for r in fired),
    }


def replay(rows: list[dict[str, Any]], thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, Any]:
    """The prior guard at each threshold, and the verified pick taking the lowest mean."""
    return {
        "prior_guard": [
            {"threshold": t, **_arm(rows, [r["probability"] < t for r in rows], "guard")} for t in thresholds
        ],
        "verified_lowest": _arm(rows, [r["lowest"] != "regmix" for r in rows], "verified_lowest"),
    }


def measure(root: Path = Path(".")) -> dict[str, Any]:
    """The record: each target's row, the replay, and how well the probability ranks the large-scale
    gain over the prior (Spearman, bootstrap 95%)."""
    records = experiment_records(root)
    found = [target_row(name, records[name]) for name in most_seeded(records).values()]
    rows = sorted((r for r in found if r is not None), key=lambda r: -r["probability"])
    rho, low, high, n = spearman_interval([r["probability"] for r in rows], [r["guard"]["change"] for r in rows])
    more = check_rows(root)
    return {
        "rows": rows,
        "replay": replay(rows),
        "probability_vs_gain": {"rho": rho, "low": low, "high": high, "n": n},
        "other_checks": {"rows": more, "by_check": by_check(more)},
    }


def by_check(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verified pick of each check (its seeds and scale) over the targets it ran on."""
    checks: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        checks.setdefault(f"{r['seeds']} seeds, {_scale(r['scale'])} scale", []).append(r)
    return [
        {"check": check, "targets": len(runs), **_arm(runs, [r["picked"] != "regmix" for r in runs], "verified_pick")}
        for check, runs in checks.items()
    ]


def _measured(step: dict[str, Any]) -> str:
    low, high = step["change_ci95"]
    return f"{step['change']:+.3f} [{low:+.3f}, {high:+.3f}] {SAID.get(step['verdict'], step['verdict'])}"


def table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's per-target table."""
    lines = [
        "| target (record) | probability the choice beats the prior | `regmix`, seeds | `prior` minus `regmix` [95%] | "
        "lowest at the proxies' scale (minus `regmix`) | its large loss minus `regmix`'s [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for r in record["rows"]:
        lowest = r["verified_lowest"]
        lines.append(
            f"| `{r['target']}` ({r['name']}) | {r['probability']:.1%} | {r['regmix']:.3f}, {r['regmix_seeds']} | "
            f"{_measured(r['guard'])} ({r['prior_seeds']} seeds) | `{r['lowest']}` ({r['lowest_at_proxy_scale']:+.3f}) | "
            + ("–" if r["lowest"] == "regmix" else _measured(lowest))
            + " |"
        )
    return "\n".join(lines)


def replay_table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of each step at the large scale."""
    lines = [
        "| step | fires on | mean change of the trained loss ± s.e. | distinguishably lower / higher |",
        "|---|---|---|---|",
    ]
    n = len(record["rows"])
    arms = [(f"prior guard, `search.min_confidence` {a['threshold']:g}", a) for a in record["replay"]["prior_guard"]]
    arms.append(("verified pick, lowest mean", record["replay"]["verified_lowest"]))
    for label, a in arms:
        lines.append(
            f"| {label} | {len(a['fired'])} of {n} | {a['mean_change']:+.3f} ± {a['stderr']:.3f} | "
            f"{a['helped']} / {a['hurt']} |"
        )
    return "\n".join(lines)


def check_table(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's table of the verified pick with another check."""
    lines = [
        "| target (record, large runs from) | fresh seeds, scale | lowest in the check: minus `regmix` (Holm p) | "
        "the large runs train | its large loss minus `regmix`'s [95%] | the lowest's large loss minus `regmix`'s [95%] | "
        "order of the checked mixtures vs the large runs' (Spearman) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in record["other_checks"]["rows"]:
        holm = "" if r["lowest_p_holm"] is None else f" ({r['lowest_p_holm']:.2g})"
        lines.append(
            f"| `{r['target']}` ({r['name']}, {r['base']}) | {r['seeds']} (was {r['base_seeds']}), {_scale(r['scale'])} | "
            f"`{r['lowest']}`: {r['lowest_in_check']:+.3f}{holm} | `{r['picked']}` | "
            + ("–" if r["picked"] == "regmix" else _measured(r["verified_pick"]))
            + " | "
            + ("–" if r["lowest"] == "regmix" else _measured(r["lowest_large"]))
            + f" | {r['order']['spearman']:.2f} over {r['order']['mixtures']} |"
        )
    return "\n".join(lines)


def _scale(changes: dict[str, Any]) -> str:
    """A check's changes to the proxy config, as `verify.json` records them (none: the proxies' own scale)."""
    return ", ".join(f"`{k}={v}`" for k, v in changes.items()) or "the proxies'"


def check_summary(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence on the verified pick of each other check."""
    said = [
        f"with {a['check']} it replaced the search's choice on {len(a['fired'])} of {a['targets']} targets, the "
        f"trained loss changing by {a['mean_change']:+.3f} nats on average (distinguishably lower on {a['helped']}, "
        f"higher on {a['hurt']})"
        for a in record["other_checks"]["by_check"]
    ]
    return "The verified pick " + "; ".join(said) + "."


def _clear(arm: dict[str, Any]) -> bool:
    """Lower by more than twice its standard error."""
    return arm["mean_change"] + 2 * arm["stderr"] < 0


def summary(record: dict[str, Any]) -> str:
    """docs/benchmarks.md's sentence: whether either step helped beyond twice its standard error."""
    s, replayed = record["probability_vs_gain"], record["replay"]
    clear = [f"{a['threshold']:g}" for a in replayed["prior_guard"] if _clear(a)]
    guard = (
        f"the prior guard at {', '.join(clear)} lowered the trained loss by more than twice its standard error"
        if clear
        else "the prior guard lowered the trained loss by more than twice its standard error at no threshold"
    )
    lowest = replayed["verified_lowest"]
    verified = "did" if _clear(lowest) else "did not"
    return (
        f"Over {len(record['rows'])} experiments on {len({r['target'] for r in record['rows']})} targets {guard}, and taking the verified mixture with the lowest mean "
        f"{verified} ({lowest['mean_change']:+.3f} ± {lowest['stderr']:.3f} nats, fired on {len(lowest['fired'])}); "
        f"the probability ranks the large-scale gain over the prior with Spearman {s['rho']:.2f} "
        f"[{s['low']:.2f}, {s['high']:.2f}]."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/decision_large.json")
    args = parser.parse_args()
    record = measure()
    write_json(args.out, record)
    print(table(record), replay_table(record), summary(record), sep="\n\n")
    if record["other_checks"]["rows"]:
        print("", check_table(record), check_summary(record), sep="\n\n")


if __name__ == "__main__":
    main()
