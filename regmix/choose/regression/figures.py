"""What the fit stage shows: predicted-vs-true scatter, per-domain curves and effects, console lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regmix.choose.regression.fitted import FitReport, FittedRegressor, resolved_text
from regmix.plots import plt, save

DPI = 110
EFFECTS = {  # regressor kind -> (title, x label) of its effects panel
    "lightgbm": ("per-domain split gain", "split gain"),
    "gp": ("per-domain 1 / length scale", "1 / length scale"),
    "linear": ("pure-domain loss minus the mean over domains", "effect on predicted loss, centred"),
    "loglinear": ("exponent t of loss = c + k exp(t . r)", "effect on log(predicted loss - c), centred"),
}
CENTRED = ("linear", "loglinear")  # effects that sum to zero: 0 is the average domain


def domain_curves(regressor: FittedRegressor, reference: np.ndarray, top: np.ndarray, points: int = 25) -> np.ndarray:
    """Predicted target as each domain's weight goes 0 -> top[d], the others scaled to fill.

    A partial-dependence picture that stays on the simplex: from the `reference` mixture,
    domain d is set to t and the remaining weights shrink in proportion. Returns
    [len(domains), points] predictions.
    """
    grid = np.linspace(0.0, 1.0, points)
    curves = []
    for d in range(len(reference)):
        rest = reference.copy()
        rest[d] = 0.0
        rest = rest / rest.sum() if rest.sum() > 0 else np.full_like(rest, 1 / max(len(rest) - 1, 1))
        t = grid * top[d]
        W = (1 - t)[:, None] * rest[None, :]
        W[:, d] = t
        curves.append(regressor.predict(W))
    return np.array(curves)


def plot_predicted_vs_true(report: FitReport, path: Path) -> None:
    """One scatter panel per scored set (cv and each eval set)."""
    sets = list(dict.fromkeys(report.predictions["set"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets):
        rows = report.predictions[report.predictions["set"] == name]
        both = rows[["true", "predicted"]].to_numpy()
        ax.scatter(rows["true"], rows["predicted"], s=10, alpha=0.6)
        lo, hi = np.nanmin(both), np.nanmax(both)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--")
        m = report.metrics[name]
        ax.set(
            title=f"{name}: spearman {m['spearman']:.4f}, n={m['n']}",
            xlabel=f"true {report.regressor.target} loss",
            ylabel="predicted",
        )
    save(fig, path, dpi=DPI)


def plot_effects(regressor: FittedRegressor, train_weights: np.ndarray, path: Path) -> None:
    """Predicted loss along each domain's weight, and the model's own per-domain effect."""
    effects = regressor.base.effects()
    curves = domain_curves(regressor, train_weights.mean(axis=0), train_weights.max(axis=0))
    fig, axes = plt.subplots(1, 2 if effects is not None else 1, figsize=(13, 5), squeeze=False)
    grid = np.linspace(0, 1, curves.shape[1])
    order = np.argsort(curves[:, -1] - curves[:, 0])
    cmap = plt.get_cmap("tab20")
    for i, d in enumerate(order):
        axes[0][0].plot(grid * train_weights[:, d].max(), curves[d], label=regressor.domains[d], color=cmap(i % 20))
    axes[0][0].set(
        title="predicted loss vs one domain's weight (others rescaled)",
        xlabel="domain weight",
        ylabel=f"predicted {regressor.target} loss",
    )
    axes[0][0].legend(fontsize=7, ncol=2)
    if effects is not None:
        title, label = EFFECTS.get(regressor.model, ("per-domain effect", "effect"))
        idx = np.argsort(effects)
        axes[0][1].barh([regressor.domains[i] for i in idx], np.asarray(effects)[idx])
        if regressor.model in CENTRED:
            axes[0][1].axvline(0.0, color="grey", lw=1)
        axes[0][1].set(title=title, xlabel=label)
    save(fig, path, dpi=DPI)


def plot_fit(report: FitReport, train_weights: np.ndarray, folder: str | Path) -> list[Path]:
    """predicted_vs_true.png (one panel per set) and effects.png (per-domain effects)."""
    paths = [Path(folder) / "predicted_vs_true.png", Path(folder) / "effects.png"]
    plot_predicted_vs_true(report, paths[0])
    plot_effects(report.regressor, train_weights, paths[1])
    return paths


def describe(metrics: dict[str, Any]) -> str:
    """One line per scored set, for the console."""
    terms = metrics.get("per_term")
    by_term = f", fitted term by term ({len(terms)} regressors, `regression.per_term`)" if terms else ""
    lines = [f"{metrics['model']} on {metrics['n_train']} proxies, target {metrics['target']}{by_term}"]
    for name, m in metrics.items():
        if isinstance(m, dict) and "spearman" in m:
            lines.append(
                f"  {name:<12} spearman {m['spearman']:.4f}  pearson {m['pearson']:.4f}  mse {m['mse']:.3g}  n={m['n']}"
            )
    lines.append(f"  predict: {metrics['predict_seconds_per_1m']:.2f} s per 1M mixtures")
    r = metrics.get("resolution")
    if r:
        noise = f"; the proxies' own seed noise is {r['seed_std']:.3g}" if r.get("seed_std") is not None else ""
        lines.append(f"  {resolved_text(r)} (CV RMSE {r['cv_rmse']:.3g}{noise})")
    return "\n".join(lines)
