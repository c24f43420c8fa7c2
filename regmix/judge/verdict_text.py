"""The verdict in words and tables, made from results/evaluation.json: `regmix`'s rank and each
other mixture's difference from it (better, worse or not distinguishable given the measured seed
noise), the plain-language answer, the comparison table and how `regmix` was decided. The run's
report (regmix.judge.report) and the README's results sections (regmix.judge.readme) share them.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from regmix.choose.decision import decision_text
from regmix.choose.mixture_files import CHOSEN
from regmix.judge.comparison import SUMMARY, TASKS
from regmix.statistics import seeds_to_resolve

TASK_TEXT = {
    "last_word": "`last_word`: greedy decoding must reproduce the last word of a passage (LAMBADA-style)",
    "continuation": "`continuation`: the true ending among several by log-likelihood per byte (HellaSwag-style)",
}


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _interval(low: Any, high: Any, digits: int = 3) -> str:
    return "" if low is None or high is None else f" [{_num(low, digits)}, {_num(high, digits)}]"


def _signed(v: float, digits: int = 3) -> str:
    return f"{v:+.{digits}f}"


def mixtures_of(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-mixture entries of results/evaluation.json, best mean target loss first."""
    return {n: results[n] for n in results[SUMMARY]["ranking"]}


def verdict_lines(results: Mapping[str, Any], target: str) -> list[str]:
    """The plain-language verdict: rank, better / not distinguishable / worse, the test used."""
    summary, entries = results[SUMMARY], mixtures_of(results)
    lines = [
        f"Target: `{target}` of each large model on the test documents, which selection never read (lower is "
        "better), mean over its seeds."
    ]
    if summary["regmix_rank"] is None:
        return lines + [f"`{CHOSEN}` was not among the trained mixtures: nothing to judge."]
    tied = summary["verdict"]["not distinguishable"] or summary["verdict"]["unknown"]
    rank = f"`{CHOSEN}` ranks {summary['regmix_rank']} of {summary['mixtures']}"
    # a rank the tests cannot separate from its neighbours' is not bolded
    lines.append(
        f"{rank if tied else f'**{rank}**'} by mean target loss"
        + (" (not distinguishable from some of the others: see below)." if tied else ".")
    )
    if summary.get("runs_of_regmix"):
        lines.append(
            f"- `{CHOSEN}`'s own mixture, scored on its runs (not compared, not ranked): "
            + ", ".join(f"`{n}`" for n in summary["runs_of_regmix"])
        )
    noise = summary["seed_noise"]
    if not noise["df"]:
        return lines + [
            "No mixture was trained with more than one seed, so the seed noise is unknown and no "
            "difference can be called real: set `large.replicate` (the demo's: "
            "`{regmix: 3, best_proxy: 3, uniform: 2, prior: 2}`)."
        ]
    for kind, label in (
        ("better", "Distinguishably better than"),
        ("not distinguishable", "Not distinguishable from"),
        ("worse", "Distinguishably worse than"),
    ):
        names = summary["verdict"][kind]
        described = (
            ", ".join(
                f"`{n}` ({_signed(entries[n]['vs_regmix']['difference'])}{_interval(*entries[n]['vs_regmix']['ci95'])})"
                for n in names
            )
            or "none"
        )
        lines.append(f"- {label} `{CHOSEN}`: {described}")
    cheap = summary.get("best_cheap")
    if cheap:
        lines.append(
            f"- `{CHOSEN}` minus the best cheap baseline (`{cheap['mixture']}`, made without proxies): "
            f"{_signed(cheap['regmix_minus'])}{_interval(*cheap['ci95'])} nats ({cheap['verdict']})"
        )
    others = summary["mixtures"] - 1
    lines.append(
        f"Differences are other minus `{CHOSEN}`, with 95% intervals. Test: Welch's two-sided t-test, "
        f"each mixture on its own seed noise (a mixture trained once borrows the noise pooled over the "
        f"others: std {noise['std']:.3f}, {noise['df']} degrees of freedom), Holm-adjusted over the "
        f"{others} comparisons at a 5% family-wise level."
    )
    return lines + ([sizing_line(summary)] if summary.get("resolves") else [])


def sizing_line(summary: Mapping[str, Any]) -> str:
    """What these seeds can resolve, and the seeds that would resolve the gain predicted over `prior`."""
    r, noise = summary["resolves"], summary["seed_noise"]
    text = (
        f"With {r['seeds']} seeds of `{CHOSEN}`, as few as {r['fewest_seeds']} of a compared mixture and seed "
        f"std {noise['std']:.3f}, the verdict calls a difference of {r['difference']:.3f} nats or more with "
        f"{r['power']:.0%} power; smaller ones mostly read `not distinguishable`."
    )
    gain = (summary.get("over_prior") or {}).get("gain")
    if gain:
        text += (
            f" Calling the gain the regression predicted over `prior` ({gain:.3f} nats) would take about "
            f"{seeds_to_resolve(noise['std'], gain, r['tests'])} seeds of each (`large.replicate`)."
        )
    return text


def spearman_line(results: Mapping[str, Any]) -> str:
    s = results[SUMMARY]["spearman"]
    if s["rho"] is None:
        return f"Predicted vs measured: too few mixtures with distinct values for a rank correlation (n = {s['n']})."
    return (
        f"Predicted vs measured target loss: Spearman rho {s['rho']:.2f}{_interval(*s['ci95'], digits=2)} "
        f"(95% bootstrap interval, n = {s['n']} mixtures; swarm mixtures use out-of-fold predictions). "
        "Proxy-scale predictions sit above large-scale losses (smaller models, fewer tokens): only ranks "
        "carry over, so only ranks are compared."
    )


def comparison_table(results: Mapping[str, Any], digits: int = 3) -> str:
    rows = []
    for name, e in mixtures_of(results).items():
        vs = e.get("vs_regmix")
        seeds = f"{e['seeds']} ({e['runs_of']}'s runs)" if "runs_of" in e else e["seeds"]
        row = {
            "mixture": f"**{name}**" if name == CHOSEN else name,
            "seeds": seeds,
            "target loss [95% CI]": _num(e["target_loss"], digits) + _interval(*e["target_loss_ci95"], digits),
            "seed std": _num(e.get("seed_std"), digits),
            f"vs {CHOSEN}": "–" if vs is None else f"{_signed(vs['difference'], digits)} {vs['verdict']}",
            "predicted (by)": f"{_num(e['predicted'], digits)} ({e['predicted_by']})",
        }
        for task in TASKS:
            if task in e["downstream"]:
                t = e["downstream"][task]
                row[f"{task} acc [95% CI]"] = _num(t["accuracy"]) + _interval(*t["ci95"])
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def tasks_text(results: Mapping[str, Any]) -> str:
    first = next(iter(mixtures_of(results).values()))["downstream"]
    parts = [
        TASK_TEXT[t]
        + (f", chance {first[t]['chance']:.2f}" if "chance" in first[t] else "")
        + f", {first[t]['examples']} examples"
        for t in TASKS
        if t in first
    ]
    if not parts:
        return ""
    return (
        "Downstream tasks are built from held-out test text of the same domains the models trained on, "
        "not external benchmarks: " + "; ".join(parts) + ". Accuracy intervals: Wilson 95% on the examples."
    )


USUAL = ("uniform", "prior")  # the choices a team makes without this pipeline
GLOSSARY = "../docs/glossary.md"  # from results/report.md


def plain_verdict(
    results: Mapping[str, Any],
    mixtures: Mapping[str, Mapping[str, float]],
    target: str,
    glossary: str = GLOSSARY,
    verdict: str | None = None,
) -> str:
    """Two or three sentences for a reader who has not read the paper: the mixture to use, how it
    measured against the usual choices, and how sure that is (`glossary`, `verdict`: links to the
    glossary and to the full verdict, relative to the page; without `verdict` it follows below;
    `regmix`'s weights empty: not named)."""
    entries = mixtures_of(results)
    if CHOSEN not in entries or CHOSEN not in mixtures:
        return f"No `{CHOSEN}` mixture was trained at the large scale: there is no answer to give yet."
    top = sorted(mixtures[CHOSEN].items(), key=lambda kv: -kv[1])
    weights = ", ".join(f"{d} {w:.0%}" for d, w in top[:4] if w >= 0.005)
    weights += ", ...; " if len(top) > 4 else "; " if weights else ""
    text = (
        f"**The pipeline's answer is the mixture `{CHOSEN}`** ({weights}`regmix export` "
        f"writes it for your trainer). On `{target}` (lower is better) its large models measured "
        f"{entries[CHOSEN]['target_loss']:.3f}"
    )
    usual = [n for n in USUAL if "vs_regmix" in entries.get(n, {})]
    if not usual:
        return text + "; no usual choice (`uniform`, `prior`) was trained beside it to compare."
    said = {"worse": "lower than", "better": "higher than", "not distinguishable": "within seed noise of"}
    parts = [f"{entries[n]['target_loss']:.3f} for `{n}`" for n in usual]
    verdicts = [said.get(entries[n]["vs_regmix"]["verdict"], "not comparable with") for n in usual]
    text += f", against {' and '.join(parts)} ({'; '.join(f'`{CHOSEN}` {v} `{n}`' for n, v in zip(usual, verdicts))})."
    if all(v == "lower than" for v in verdicts):
        return text + (
            " The differences are larger than the seeds' spread explains (Welch's test, Holm-adjusted "
            "over the report, 5%): on this evidence it is the better choice."
        )
    where = f"the [verdict]({verdict})" if verdict else "the verdict below"
    return text + (
        " On this evidence it is not shown to beat both usual choices: telling such differences apart "
        f"would take more seeds or a target the mixtures move more ({where} says how many; "
        f"terms are explained in the [glossary]({glossary}))."
    )


def decision_line(verify: Mapping[str, Any] | None, mixture: Mapping[str, Any] | None = None) -> str:
    """The decision's record in words: results/verify.json's (every step), else the search's own."""
    decision = (verify or {}).get("decision") or (mixture or {}).get("decision")
    return (
        "How `regmix` was decided: " + decision_text(decision)
        if decision
        else "How `regmix` was decided: not recorded (rerun the search and verify stages)."
    )
