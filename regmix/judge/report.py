"""results/report.md and plots/evaluate/: does the mixture chosen at proxy scale win at scale,
and how sure can we be?

The report opens with the verdict (regmix.judge.comparison, regmix.statistics): where `regmix` ranks,
and for every other mixture whether it is better, worse or not distinguishable given the
measured seed noise. Then each mixture's target loss with its interval, downstream accuracy
with binomial intervals, the weights of every mixture and its loss on every domain.
The same verdict, shorter, is the README's results section, and in full docs/results.md's
(`readme_results`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import numpy as np
import pandas as pd
import yaml

from regmix.choose.mixture_files import CHOSEN
from regmix.choose.decision import decision_text
from regmix.judge.comparison import SUMMARY, TASKS
from regmix.files import write_text
from regmix.plots import plt, save
from regmix.choose.regression import gain_text, resolved_text
from regmix.tables import write_csv
from regmix.choose.verify import replaced, verify_text
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
    lines = [f"Target: `{target}` of each large model on the test documents, which selection never read (lower is "
             "better), mean over its seeds."]
    if summary["regmix_rank"] is None:
        return lines + [f"`{CHOSEN}` was not among the trained mixtures: nothing to judge."]
    tied = summary["verdict"]["not distinguishable"] or summary["verdict"]["unknown"]
    rank = f"`{CHOSEN}` ranks {summary['regmix_rank']} of {summary['mixtures']}"
    # a rank the tests cannot separate from its neighbours' is not bolded
    lines.append(f"{rank if tied else f'**{rank}**'} by mean target loss"
                 + (" (not distinguishable from some of the others: see below)." if tied else "."))
    if summary.get("runs_of_regmix"):
        lines.append(f"- `{CHOSEN}`'s own mixture, scored on its runs (not compared, not ranked): "
                     + ", ".join(f"`{n}`" for n in summary["runs_of_regmix"]))
    noise = summary["seed_noise"]
    if not noise["df"]:
        return lines + ["No mixture was trained with more than one seed, so the seed noise is unknown and no "
                        "difference can be called real: set `large.replicate` (the demo's: "
                        "`{regmix: 3, best_proxy: 3, uniform: 2, prior: 2}`)."]
    for kind, label in (("better", "Distinguishably better than"), ("not distinguishable", "Not distinguishable from"),
                        ("worse", "Distinguishably worse than")):
        names = summary["verdict"][kind]
        described = ", ".join(f"`{n}` ({_signed(entries[n]['vs_regmix']['difference'])}"
                              f"{_interval(*entries[n]['vs_regmix']['ci95'])})" for n in names) or "none"
        lines.append(f"- {label} `{CHOSEN}`: {described}")
    cheap = summary.get("best_cheap")
    if cheap:
        lines.append(f"- `{CHOSEN}` minus the best cheap baseline (`{cheap['mixture']}`, made without proxies): "
                     f"{_signed(cheap['regmix_minus'])}{_interval(*cheap['ci95'])} nats ({cheap['verdict']})")
    others = summary["mixtures"] - 1
    lines.append(f"Differences are other minus `{CHOSEN}`, with 95% intervals. Test: Welch's two-sided t-test, "
                 f"each mixture on its own seed noise (a mixture trained once borrows the noise pooled over the "
                 f"others: std {noise['std']:.3f}, {noise['df']} degrees of freedom), Holm-adjusted over the "
                 f"{others} comparisons at a 5% family-wise level.")
    return lines + ([sizing_line(summary)] if summary.get("resolves") else [])


def sizing_line(summary: Mapping[str, Any]) -> str:
    """What these seeds can resolve, and the seeds that would resolve the gain predicted over `prior`."""
    r, noise = summary["resolves"], summary["seed_noise"]
    text = (f"With {r['seeds']} seeds of `{CHOSEN}`, as few as {r['fewest_seeds']} of a compared mixture and seed "
            f"std {noise['std']:.3f}, the verdict calls a difference of {r['difference']:.3f} nats or more with "
            f"{r['power']:.0%} power; smaller ones mostly read `not distinguishable`.")
    gain = (summary.get("over_prior") or {}).get("gain")
    if gain:
        text += (f" Calling the gain the regression predicted over `prior` ({gain:.3f} nats) would take about "
                 f"{seeds_to_resolve(noise['std'], gain, r['tests'])} seeds of each (`large.replicate`).")
    return text


def spearman_line(results: Mapping[str, Any]) -> str:
    s = results[SUMMARY]["spearman"]
    if s["rho"] is None:
        return f"Predicted vs measured: too few mixtures with distinct values for a rank correlation (n = {s['n']})."
    return (f"Predicted vs measured target loss: Spearman rho {s['rho']:.2f}{_interval(*s['ci95'], digits=2)} "
            f"(95% bootstrap interval, n = {s['n']} mixtures; swarm mixtures use out-of-fold predictions). "
            "Proxy-scale predictions sit above large-scale losses (smaller models, fewer tokens): only ranks "
            "carry over, so only ranks are compared.")


def comparison_table(results: Mapping[str, Any], digits: int = 3) -> str:
    rows = []
    for name, e in mixtures_of(results).items():
        vs = e.get("vs_regmix")
        seeds = f"{e['seeds']} ({e['runs_of']}'s runs)" if "runs_of" in e else e["seeds"]
        row = {"mixture": f"**{name}**" if name == CHOSEN else name, "seeds": seeds,
               "target loss [95% CI]": _num(e["target_loss"], digits) + _interval(*e["target_loss_ci95"], digits),
               "seed std": _num(e.get("seed_std"), digits),
               f"vs {CHOSEN}": "–" if vs is None else f"{_signed(vs['difference'], digits)} {vs['verdict']}",
               "predicted (by)": f"{_num(e['predicted'], digits)} ({e['predicted_by']})"}
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

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def tasks_text(results: Mapping[str, Any]) -> str:
    first = next(iter(mixtures_of(results).values()))["downstream"]
    parts = [TASK_TEXT[t] + (f", chance {first[t]['chance']:.2f}" if "chance" in first[t] else "")
             + f", {first[t]['examples']} examples" for t in TASKS if t in first]
    if not parts:
        return ""
    return ("Downstream tasks are built from held-out test text of the same domains the models trained on, "
            "not external benchmarks: " + "; ".join(parts) + ". Accuracy intervals: Wilson 95% on the examples.")


def render(results: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]], target: str,
           plot_links: list[str], verify: Mapping[str, Any] | None = None) -> str:
    entries = mixtures_of(results)
    weights = pd.DataFrame({n: mixtures[n] for n in entries}).rename_axis("domain").reset_index()
    losses = pd.DataFrame({n: e["domain_loss"] for n, e in entries.items()}).rename_axis("domain").reset_index()
    lines = ["# Large-model comparison", "", plain_verdict(results, mixtures, target), "",
             "## Verdict", "", *verdict_lines(results, target), "",
             spearman_line(results), "", proxy_scale_line(results, mixtures, verify), "",
             *([verify_text(verify), ""] if verify is not None else []),
             "## How `regmix` was decided", "", decision_line(verify), "",
             "## Mixtures", "", comparison_table(results), "", tasks_text(results), "",
             "## Weights of each compared mixture", "", markdown_table(weights), "",
             "## Validation loss per domain (mean over seeds)", "",
             "What each mixture costs on the domains it does not target: compare a row across mixtures.", "",
             markdown_table(losses), ""]
    lines += [f"![{Path(link).stem}]({link})" for link in plot_links]
    return "\n".join(lines) + "\n"


USUAL = ("uniform", "prior")  # the choices a team makes without this pipeline
GLOSSARY = "../docs/glossary.md"  # from results/report.md


def plain_verdict(results: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]], target: str,
                  glossary: str = GLOSSARY, verdict: str | None = None) -> str:
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
    text = (f"**The pipeline's answer is the mixture `{CHOSEN}`** ({weights}`regmix export` "
            f"writes it for your trainer). On `{target}` (lower is better) its large models measured "
            f"{entries[CHOSEN]['target_loss']:.3f}")
    usual = [n for n in USUAL if "vs_regmix" in entries.get(n, {})]
    if not usual:
        return text + "; no usual choice (`uniform`, `prior`) was trained beside it to compare."
    said = {"worse": "lower than", "better": "higher than", "not distinguishable": "within seed noise of"}
    parts = [f"{entries[n]['target_loss']:.3f} for `{n}`" for n in usual]
    verdicts = [said.get(entries[n]["vs_regmix"]["verdict"], "not comparable with") for n in usual]
    text += f", against {' and '.join(parts)} ({'; '.join(f'`{CHOSEN}` {v} `{n}`' for n, v in zip(usual, verdicts))})."
    if all(v == "lower than" for v in verdicts):
        return text + (" The differences are larger than the seeds' spread explains (Welch's test, Holm-adjusted "
                       "over the report, 5%): on this evidence it is the better choice.")
    where = f"the [verdict]({verdict})" if verdict else "the verdict below"
    return text + (" On this evidence it is not shown to beat both usual choices: telling such differences apart "
                   f"would take more seeds or a target the mixtures move more ({where} says how many; "
                   f"terms are explained in the [glossary]({glossary})).")


def proxy_scale_line(results: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]],
                     verify: Mapping[str, Any] | None = None) -> str:
    """What the regression said of the search's choice against `prior` before any large run, and
    whether the check (`verify`: results/verify.json) replaced that choice as `regmix`."""
    judged = results[SUMMARY].get("over_prior")
    if judged is None:
        return "The regression's confidence over `prior` is not known (no `prior`, or a fit without its CV)."
    other = replaced(verify or {})
    if other:
        return (f"At the proxy scale the search's choice was {gain_text(judged)}; the large runs train `{other}`'s "
                f"mixture as `regmix` instead (the check below).")
    return f"At the proxy scale `regmix` was {gain_text(judged)}."


def proxies_line(proxies: Mapping[str, Any], fit: Mapping[str, Any], mixture: Mapping[str, Any]) -> str:
    """The proxy-scale half: swarm size, seed noise, CV of the regression, what it can resolve, the
    choice (`mixture`: results/mixture.yaml) and how sure the regression is that it beats the prior."""
    noise = proxies.get("seed_noise", {})
    r, cv = fit.get("resolution", {}), fit["cv"]
    top = sorted(mixture["train"].items(), key=lambda kv: -kv[1])
    weights = ", ".join(f"{d} {w:.0%}" for d, w in top if w >= 0.01)
    text = (f"{proxies['proxies']} proxies of {proxies['params']:,} parameters ({proxies['tokens_per_proxy']:,} tokens "
            f"each); {fit['model']} on `{fit['target']}`: cross-validated Spearman {cv['spearman']:.2f}, "
            f"RMSE {cv['rmse']:.3f} nats (n = {cv['n']}, {cv['folds']} folds).")
    if noise.get("pairs"):
        text += (f" Seed noise of a proxy's target loss: {noise['target_std']:.3f} nats ({noise['pairs']} mixtures "
                 "trained twice).")
    if r:
        text += " " + resolved_text(r) + "."
    return text + f" The chosen mixture: {weights}." + over_prior_text(mixture)


def decision_line(verify: Mapping[str, Any] | None, mixture: Mapping[str, Any] | None = None) -> str:
    """The decision's record in words: results/verify.json's (every step), else the search's own."""
    decision = (verify or {}).get("decision") or (mixture or {}).get("decision")
    return "How `regmix` was decided: " + decision_text(decision) if decision else \
        "How `regmix` was decided: not recorded (rerun the search and verify stages)."


def over_prior_text(mixture: Mapping[str, Any]) -> str:
    """The choice against the prior at the proxy scale, as the regression judged it."""
    judged = mixture.get("confidence", {}).get("prior")
    return f" It is {gain_text(judged)}." if judged else ""


NOT_COMPARED = ("The large-scale comparison (the `train` and `evaluate` stages) is not part of the committed "
                "run: `make demo` trains every compared mixture and writes the verdict to `results/report.md`.")


def sets_text(sets: Mapping[str, Mapping[str, Any]]) -> str:
    """What every model is scored on: each set's role, held-out documents per split and the share of
    its test 13-grams found in the train shards (results/domains.json)."""
    rows = [{"set": name, "role": "trained on" if d.get("role", "train") == "train" else "held out",
             "train docs": d.get("train_documents", 0), "valid docs": d.get("valid_documents", 0),
             "test docs": d.get("test_documents", 0),
             "test 13-grams in train": f"{d['test_13gram_in_train']:.1%}" if "test_13gram_in_train" in d else "-"}
            for name, d in sets.items()]
    held = sum(r["role"] == "held out" for r in rows)
    return (f"Every model is scored on {len(rows)} sets ({len(rows) - held} trained on, {held} held out): "
            "selection (proxies, fit, search, verify) reads valid, the verdict reads test, and no document is in "
            "both.\n\n" + markdown_table(pd.DataFrame(rows)))


class Sections(NamedTuple):
    """The results sections of one run: the README's (`readme`: the answer in plain words, the
    comparison table, how `regmix` was decided) and docs/results.md's (`page`: every figure)."""

    readme: str
    page: str


README_PAGE = "docs/results.md"  # the README's link to the full section; the page's own path


def readme_results(results: Mapping[str, Any] | None, proxies: Mapping[str, Any], fit: Mapping[str, Any],
                   mixture: Mapping[str, Any], verify: Mapping[str, Any] | None = None,
                   sets: Mapping[str, Mapping[str, Any]] | None = None) -> Sections:
    """The README's results section and docs/results.md's, made from the committed metrics and
    results only (`results` None: no large-scale comparison committed; `verify` None: no proxy-scale
    check; `sets`: results/domains.json)."""
    head = [proxies_line(proxies, fit, mixture), "", *([verify_text(verify), ""] if verify is not None else []),
            decision_line(verify, mixture), "", *([sets_text(sets), ""] if sets else [])]
    if results is None:
        page = "\n".join([*head, NOT_COMPARED]) + "\n"
        return Sections("\n".join([proxies_line(proxies, fit, mixture), "", NOT_COMPARED, "",
                                    decision_line(verify, mixture)]) + "\n", page)
    # regmix's weights are the search's choice unless the check replaced it (then not named here)
    chosen = {CHOSEN: {} if replaced(verify or {}) else mixture["train"]}
    page = "\n".join([plain_verdict(results, chosen, fit["target"], glossary="glossary.md"), "", *head,
                      *verdict_lines(results, fit["target"]), "", spearman_line(results), "",
                      comparison_table(results), "", tasks_text(results)]) + "\n"
    readme = "\n".join([plain_verdict(results, chosen, fit["target"], glossary="docs/glossary.md",
                                      verdict=README_PAGE), "", comparison_table(results), "",
                        decision_line(verify, mixture)]) + "\n"
    return Sections(readme, page)


README_BEGIN = "<!-- results: generated by `make readme` from metrics/ and results/; do not edit -->"
README_END = "<!-- end of generated results -->"


def readme_with_results(readme: str, section: str) -> str:
    """`readme` with the text between its results markers replaced by `section`."""
    start, end = readme.index(README_BEGIN) + len(README_BEGIN), readme.index(README_END)
    return readme[:start] + "\n" + section + readme[end:]


def committed_results(root: str | Path = ".") -> Sections:
    """The README's and docs/results.md's results sections from the committed metrics/ and results/
    under `root`."""
    root = Path(root)
    read = lambda rel: json.loads((root / rel).read_text())  # noqa: E731
    mixture = yaml.safe_load((root / "results/mixture.yaml").read_text())
    optional = {rel: read(rel) if (root / rel).exists() else None for rel in ("results/evaluation.json",
                                                                             "results/verify.json")}
    return readme_results(optional["results/evaluation.json"], read("results/proxy_run.json"), read("results/fit.json"),
                          mixture, optional["results/verify.json"], read("results/domains.json"))


if __name__ == "__main__":  # make readme: README.md's and docs/results.md's results sections
    for path, section in zip(("README.md", README_PAGE), committed_results()):
        write_text(Path(path), readme_with_results(Path(path).read_text(), section))


def plot_target_loss(results: Mapping[str, Any], target: str, path: Path) -> None:
    entries = mixtures_of(results)
    names = list(entries)
    mean = np.array([entries[n]["target_loss"] for n in names])
    ci = np.array([[math.nan if v is None else v for v in entries[n]["target_loss_ci95"]] for n in names])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names)), 3.8))
    colors = ["tab:red" if m == CHOSEN else "tab:gray" for m in names]
    ax.bar(names, mean, color=colors)
    if not np.isnan(ci).all():
        ax.errorbar(names, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], fmt="none", color="black", capsize=3)
    top = np.nanmax(np.concatenate([mean, ci[:, 1]]))
    low = np.nanmin(np.concatenate([mean, ci[:, 0]]))
    pad = max(1e-3, 0.3 * (top - low))
    ax.set_ylim(low - pad, top + pad)  # the differences are what matters, not the zero
    ax.set_ylabel(f"{target} loss (mean over seeds)")
    ax.set_title(f"Large models: {target} validation loss, 95% intervals from seed noise")
    ax.tick_params(axis="x", rotation=30)
    save(fig, path)


def plot_predicted_vs_measured(results: Mapping[str, Any], target: str, path: Path) -> None:
    entries = {n: e for n, e in mixtures_of(results).items() if e["predicted"] is not None and "runs_of" not in e}
    s = results[SUMMARY]["spearman"]
    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    for name, e in entries.items():
        low, high = e["target_loss_ci95"]
        yerr = None if low is None else [[e["target_loss"] - low], [high - e["target_loss"]]]
        ax.errorbar(e["predicted"], e["target_loss"], yerr=yerr, fmt="o", capsize=3,
                    color="tab:red" if name == CHOSEN else "tab:blue")
    # Labels in a legend-like list beside the points: point labels overlap when losses are close.
    for i, (name, e) in enumerate(sorted(entries.items(), key=lambda kv: kv[1]["target_loss"])):
        ax.annotate(f"{i + 1}", (e["predicted"], e["target_loss"]), fontsize=8, xytext=(4, 2),
                    textcoords="offset points")
        ax.text(1.02, 1 - 0.06 * i, f"{i + 1}: {name}", transform=ax.transAxes, fontsize=8, va="top")
    ax.set_xlabel(f"predicted {target} loss (proxy scale)")
    ax.set_ylabel(f"measured {target} loss (large model)")
    title = f"n={s['n']}" if s["rho"] is None else f"Spearman rho {s['rho']:.2f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}], n={s['n']}"
    ax.set_title(title)
    save(fig, path)


def write_report(results: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]], target: str,
                 report_path: str | Path, plots_dir: str | Path, verify: Mapping[str, Any] | None = None) -> None:
    """Write the markdown report and its plots (`verify`: results/verify.json, the proxy-scale check)."""
    plots_dir = Path(plots_dir)
    plots = {"target_loss.png": plot_target_loss, "predicted_vs_measured.png": plot_predicted_vs_measured}
    for name, plot in plots.items():
        plot(results, target, plots_dir / name)
    links = [os.path.relpath(plots_dir / name, Path(report_path).parent) for name in plots]
    write_text(report_path, render(results, mixtures, target, links, verify))


CURVES_DIR = "curves"  # inside the comparison folder: one table per validation series


def write_comparison(folder: str | Path, results: Mapping[str, Any],
                     curves: Mapping[str, pd.DataFrame]) -> None:
    """The data of the comparison charts `dvc plots show` draws (dvc.yaml's top-level plots):
    `curves/<series>.csv` (`regmix.train.curves.valid_curves`: every mixture's validation curve of a
    domain or the mean, one column each) and `predicted_vs_measured.csv` (each mixture's
    predicted and measured target loss, with its 95% interval)."""
    folder = Path(folder)
    shutil.rmtree(folder / CURVES_DIR, ignore_errors=True)  # no series of another corpus's domains
    for series, table in curves.items():
        write_csv(folder / CURVES_DIR / f"{series}.csv", table)
    rows = [{"mixture": n, "predicted": e["predicted"], "measured": e["target_loss"],
             "measured_low": e["target_loss_ci95"][0], "measured_high": e["target_loss_ci95"][1],
             "predicted_by": e["predicted_by"]} for n, e in mixtures_of(results).items()]
    write_csv(folder / "predicted_vs_measured.csv", pd.DataFrame(rows))
