"""results/report.md and plots/evaluate/: does the mixture chosen at proxy scale win at scale?

The rank of `regmix` among the trained mixtures answers it directly; the Spearman correlation
between the regressor's predicted and the measured target loss says whether the proxies'
ranking carries over to the large model (RegMix's rank-invariance assumption).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from regmix.files import write_text
from regmix.plots import plt, save

CHOSEN = "regmix"


def comparison(results: Mapping[str, Mapping[str, Any]],
               predicted: Mapping[str, float]) -> pd.DataFrame:
    """One row per mixture, best measured target loss first, with its rank (1 = best)."""
    rows = []
    for name, r in results.items():
        down = r["downstream"]
        rows.append({"mixture": name, "target_loss": r["target_loss"],
                     "predicted": predicted.get(name, math.nan),
                     **{task: down[task]["accuracy"] for task in ("last_word", "continuation")
                        if task in down},
                     "downstream": down.get("average", math.nan)})
    frame = pd.DataFrame(rows).sort_values("target_loss", kind="stable").reset_index(drop=True)
    frame.insert(1, "rank", frame["target_loss"].rank(method="min").astype(int))
    return frame


def rank_correlation(frame: pd.DataFrame) -> tuple[float, int]:
    """Spearman rho of predicted vs measured target loss, and how many mixtures it covers."""
    both = frame.dropna(subset=["predicted", "target_loss"])
    if len(both) < 3 or both["predicted"].nunique() < 2 or both["target_loss"].nunique() < 2:
        return math.nan, len(both)
    return float(spearmanr(both["predicted"], both["target_loss"]).statistic), len(both)


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "|".join("---" for _ in frame.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render(frame: pd.DataFrame, results: Mapping[str, Mapping[str, Any]],
           target: Any, plot_links: list[str]) -> str:
    rho, n = rank_correlation(frame)
    lines = ["# Large-model comparison", "",
             f"Target: `{target}` (validation loss, lower is better). Downstream: zero-shot "
             "accuracy on held-out text (last_word, continuation), averaged over domains.", ""]
    if CHOSEN in set(frame["mixture"]):
        rank = int(frame.loc[frame["mixture"] == CHOSEN, "rank"].iloc[0])
        best = frame["mixture"].iloc[0]
        verdict = "the best" if rank == 1 else f"behind `{best}`"
        lines.append(f"**`{CHOSEN}` ranks {rank} of {len(frame)}** by target loss ({verdict}).")
    else:
        lines.append(f"`{CHOSEN}` was not among the trained mixtures.")
    rho_text = "n/a (fewer than 3 mixtures with distinct values)" if math.isnan(rho) else f"{rho:.3f}"
    lines += [f"**Spearman rho (predicted vs measured target loss, {n} mixtures): {rho_text}** — "
              "how well the proxy-scale ranking carries over to the large model.", "",
              "## Mixtures", "", markdown_table(frame), "",
              "## Validation loss per domain", "",
              markdown_table(pd.DataFrame({name: r["domain_loss"] for name, r in results.items()})
                             .rename_axis("domain").reset_index()), ""]
    lines += [f"![{Path(link).stem}]({link})" for link in plot_links]
    return "\n".join(lines) + "\n"


def plot_target_loss(frame: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(frame)), 3.5))
    colors = ["tab:red" if m == CHOSEN else "tab:gray" for m in frame["mixture"]]
    ax.bar(frame["mixture"], frame["target_loss"], color=colors)
    low, high = frame["target_loss"].min(), frame["target_loss"].max()
    pad = max(1e-3, 0.5 * (high - low))
    ax.set_ylim(low - pad, high + pad)  # the differences are what matters, not the zero
    ax.set_ylabel("target loss (measured)")
    ax.tick_params(axis="x", rotation=30)
    save(fig, path)


def plot_predicted_vs_measured(frame: pd.DataFrame, path: Path) -> None:
    rho, n = rank_correlation(frame)
    fig, ax = plt.subplots(figsize=(4.5, 4.0))
    for row in frame.itertuples(index=False):
        ax.scatter(row.predicted, row.target_loss, color="tab:red" if row.mixture == CHOSEN else "tab:blue")
        ax.annotate(row.mixture, (row.predicted, row.target_loss), fontsize=8,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("predicted target loss (regression on proxies)")
    ax.set_ylabel("measured target loss (large model)")
    ax.set_title(f"Spearman rho = {rho:.3f} (n={n})" if not math.isnan(rho) else f"n={n}")
    save(fig, path)


def write_report(results: Mapping[str, Mapping[str, Any]], predicted: Mapping[str, float],
                 target: Any, report_path: str | Path, plots_dir: str | Path) -> pd.DataFrame:
    """Write the markdown report and both plots; return the comparison table."""
    frame = comparison(results, predicted)
    plots_dir = Path(plots_dir)
    plots = {"target_loss.png": plot_target_loss,
             "predicted_vs_measured.png": plot_predicted_vs_measured}
    for name, plot in plots.items():
        plot(frame, plots_dir / name)
    links = [os.path.relpath(plots_dir / name, Path(report_path).parent) for name in plots]
    write_text(report_path, render(frame, results, target, links))
    return frame
