"""The large run's curves: DVCLive on rank 0 (train loss, lr, throughput, validation loss per
domain), the training loop's per-step callback that feeds them and the progress bar, and the
compared mixtures' validation curves side by side."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from regmix.progress import amount

if TYPE_CHECKING:  # the bar comes from regmix.progress.progress
    from tqdm import tqdm

METRICS_DIR = Path("plots", "metrics")  # DVCLive's curves (one TSV a metric) inside a run's folder
VALID = "val"  # the validation curves: val/<domain>.tsv and val/mean.tsv


class Curves:
    """DVCLive logger on rank 0 (train loss, lr, throughput, validation loss per domain).

    On resume the rows past the checkpoint's step are dropped first, so the curve of a
    killed-and-resumed run reads like one uninterrupted run.
    """

    def __init__(self, log_dir: Path, start: int):
        from dvclive import Live

        if start == 0:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            for tsv in (log_dir / METRICS_DIR).rglob("*.tsv"):
                rows = pd.read_csv(tsv, sep="\t")
                rows[rows["step"] <= start].to_csv(tsv, sep="\t", index=False)
        self.live = Live(str(log_dir), resume=start > 0, save_dvc_exp=False, dvcyaml=None, report=None)
        self.live.step = start

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.live.step = step
        for key, value in metrics.items():
            self.live.log_metric(key, value)
        self.live.next_step()

    def close(self, summary: Mapping[str, Any]) -> None:
        """Write `summary` beside the last metrics and finish the DVCLive run."""
        self.live.summary.update(summary)
        self.live.end()


class StepLogger:
    """The training loop's `on_step`: the progress bar, and on rank 0 the train curves.

    `loss` is rank 0's micro-batch loss: logging it costs no extra all-reduce per step.
    """

    def __init__(self, bar: tqdm, curves: Curves | None, tokens_per_step: int):
        self.bar = bar
        self.curves = curves
        self.tokens_per_step = tokens_per_step
        self.last = time.perf_counter()  # end of the previous step, for the throughput curve

    def __call__(self, step: int, loss: float, lr: float) -> None:
        if self.curves is not None:
            now = time.perf_counter()
            throughput = self.tokens_per_step / max(now - self.last, 1e-9)
            self.curves.log(step + 1, {"train/loss": loss, "train/lr": lr, "train/tokens_per_s": throughput})
            # Shown at the bar's next redraw: a redraw per step would flood a log.
            self.bar.set_postfix_str(f"loss={loss:.3f}, {amount(throughput)} tokens/s", refresh=False)
            self.last = now
        self.bar.update(1)


def valid_curves(runs: Mapping[str, Sequence[Path]]) -> dict[str, pd.DataFrame]:
    """Every compared mixture's validation curves on one table per series (each domain, `mean`):
    `step` and one column per mixture, the mean over its seeds. `runs`: mixture -> the curve
    folders of its seeds."""
    by_series: dict[str, dict[str, list[pd.Series]]] = {}
    for name, folders in runs.items():
        for folder in folders:
            for tsv in sorted((Path(folder) / METRICS_DIR / VALID).glob("*.tsv")):
                curve = pd.read_csv(tsv, sep="\t").set_index("step")[tsv.stem]
                by_series.setdefault(tsv.stem, {}).setdefault(name, []).append(curve)
    return {
        series: pd.DataFrame({name: pd.concat(seeds, axis=1).mean(axis=1) for name, seeds in by_name.items()})
        .sort_index()
        .rename_axis("step")
        .reset_index()
        for series, by_name in sorted(by_series.items())
    }
