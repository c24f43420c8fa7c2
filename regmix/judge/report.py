"""results/report.md and plots/evaluate/: does the mixture chosen at proxy scale win at scale,
and how sure can we be?

The report opens with the verdict (regmix.judge.comparison, regmix.statistics): where `regmix` ranks,
and for every other mixture whether it is better, worse or not distinguishable given the
measured seed noise. Then each mixture's target loss with its interval, downstream accuracy
with binomial intervals, the weights of every mixture and its loss on every domain.
The same verdict, shorter, is the README's results section, and in full docs/results.md's
(regmix.judge.readme). results/comparison/ holds the comparison charts' data (`write_comparison`).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from regmix.choose.mixture_files import CHOSEN
from regmix.choose.regression import gain_text
from regmix.choose.verify import replaced
from regmix.choose.verify_text import verify_text
from regmix.files import write_text
from regmix.judge.comparison import SUMMARY
from regmix.judge.verdict_text import (
    comparison_table,
    decision_line,
    markdown_table,
    mixtures_of,
    plain_verdict,
    spearman_line,
    tasks_text,
    verdict_lines,
)
from regmix.plots import plt, save
from regmix.tables import write_csv


def render(
    results: Mapping[str, Any],
    mixtures: Mapping[str, Mapping[str, float]],
    target: str,
    plot_links: list[str],
    verify: Mapping[str, Any] | None = None,
) -> str:
    entries = mixtures_of(results)
    weights = pd.DataFrame({n: mixtures[n] for n in entries}).rename_axis("domain").reset_index()
    losses = pd.DataFrame({n: e["domain_loss"] for n, e in entries.items()}).rename_axis("domain").reset_index()
    lines = [
        "# Large-model comparison",
        "",
        plain_verdict(results, mixtures, target),
        "",
        "## Verdict",
        "",
        *verdict_lines(results, target),
        "",
        spearman_line(results),
        "",
        proxy_scale_line(results, mixtures, verify),
        "",
        *([verify_text(verify), ""] if verify is not None else []),
        "## How `regmix` was decided",
        "",
        decision_line(verify),
        "",
        "## Mixtures",
        "",
        comparison_table(results),
        "",
        tasks_text(results),
        "",
        "## Weights of each compared mixture",
        "",
        markdown_table(weights),
        "",
        "## Validation loss per domain (mean over seeds)",
        "",
        "What each mixture costs on the domains it does not target: compare a row across mixtures.",
        "",
        markdown_table(losses),
        "",
    ]
    lines += [f"![{Path(link).stem}]({link})" for link in plot_links]
    return "\n".join(lines) + "\n"


def proxy_scale_line(
    results: Mapping[str, Any], mixtures: Mapping[str, Mapping[str, float]], verify: Mapping[str, Any] | None = None
) -> str:
    """What the regression said of the search's choice against `prior` before any large run, and
    whether the check (`verify`: results/verify.json) replaced that choice as `regmix`."""
    judged = results[SUMMARY].get("over_prior")
    if judged is None:
        return "The regression's confidence over `prior` is not known (no `prior`, or a fit without its CV)."
    other = replaced(verify or {})
    if other:
        return (
            f"At the proxy scale the search's choice was {gain_text(judged)}; the large runs train `{other}`'s "
            f"mixture as `regmix` instead (the check below)."
        )
    return f"At the proxy scale `regmix` was {gain_text(judged)}."


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
        ax.errorbar(
            e["predicted"],
            e["target_loss"],
            yerr=yerr,
            fmt="o",
            capsize=3,
            color="tab:red" if name == CHOSEN else "tab:blue",
        )
    # Labels in a legend-like list beside the points: point labels overlap when losses are close.
    for i, (name, e) in enumerate(sorted(entries.items(), key=lambda kv: kv[1]["target_loss"])):
        ax.annotate(
            f"{i + 1}", (e["predicted"], e["target_loss"]), fontsize=8, xytext=(4, 2), textcoords="offset points"
        )
        ax.text(1.02, 1 - 0.06 * i, f"{i + 1}: {name}", transform=ax.transAxes, fontsize=8, va="top")
    ax.set_xlabel(f"predicted {target} loss (proxy scale)")
    ax.set_ylabel(f"measured {target} loss (large model)")
    title = (
        f"n={s['n']}"
        if s["rho"] is None
        else f"Spearman rho {s['rho']:.2f} [{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}], n={s['n']}"
    )
    ax.set_title(title)
    save(fig, path)


def write_report(
    results: Mapping[str, Any],
    mixtures: Mapping[str, Mapping[str, float]],
    target: str,
    report_path: str | Path,
    plots_dir: str | Path,
    verify: Mapping[str, Any] | None = None,
) -> None:
    """Write the markdown report and its plots (`verify`: results/verify.json, the proxy-scale check)."""
    plots_dir = Path(plots_dir)
    plots = {"target_loss.png": plot_target_loss, "predicted_vs_measured.png": plot_predicted_vs_measured}
    for name, plot in plots.items():
        plot(results, target, plots_dir / name)
    links = [os.path.relpath(plots_dir / name, Path(report_path).parent) for name in plots]
    write_text(report_path, render(results, mixtures, target, links, verify))


CURVES_DIR = "curves"  # inside the comparison folder: one table per validation series


def write_comparison(folder: str | Path, results: Mapping[str, Any], curves: Mapping[str, pd.DataFrame]) -> None:
    """The data of the comparison charts `dvc plots show` draws (dvc.yaml's top-level plots):
    `curves/<series>.csv` (`regmix.train.curves.valid_curves`: every mixture's validation curve of a
    domain or the mean, one column each) and `predicted_vs_measured.csv` (each mixture's
    predicted and measured target loss, with its 95% interval)."""
    folder = Path(folder)
    shutil.rmtree(folder / CURVES_DIR, ignore_errors=True)  # no series of another corpus's domains
    for series, table in curves.items():
        write_csv(folder / CURVES_DIR / f"{series}.csv", table)
    rows = [
        {
            "mixture": n,
            "predicted": e["predicted"],
            "measured": e["target_loss"],
            "measured_low": e["target_loss_ci95"][0],
            "measured_high": e["target_loss_ci95"][1],
            "predicted_by": e["predicted_by"],
        }
        for n, e in mixtures_of(results).items()
    ]
    write_csv(folder / "predicted_vs_measured.csv", pd.DataFrame(rows))
