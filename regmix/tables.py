"""The small tables passed between stages, read and written in one place.

- results/domains.json: {set: {"role", "documents", "<split>_documents", "<split>_tokens", "source",
  "test_13gram_in_train"}} for every training domain (role `train`) and held-out set (`held_out`:
  `data.eval_only` domains and evaluation sets, no train split); a domain cut at `data.max_tokens`
  also has "corpus_train_tokens" (before the cut: what its prior share counts; "train_tokens",
  what the shards hold, is what caps and epochs count)
- results/mixtures.csv: `id` and one weight column per domain (rows sum to 1)
- results/proxies.csv:  `id`, `round` (0: the initial swarm; regmix.choose.active), weight columns, and the
                        scores of every scored set and task (regmix.train.scores): `loss.<set>`, `bpb.<set>`,
                        `task.<name>`, `acc.<name>`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from regmix.errors import UserError
from regmix.files import atomic_path, existing, read_json

LOSS_PREFIX = "loss."
SCORE_PREFIXES = (LOSS_PREFIX, "bpb.", "task.", "acc.")  # columns of scores; a slugged domain has no dot
ROUND = "round"  # results/proxies.csv: the active round a proxy came from


def read_sets(path: str | Path) -> dict[str, dict]:
    """Every scored set of results/domains.json: training domains and held-out sets."""
    return read_json(path)


def read_domains(path: str | Path) -> dict[str, dict]:
    """The training domains of results/domains.json (held-out sets have role `held_out`)."""
    return {name: d for name, d in read_sets(path).items() if d.get("role", "train") == "train"}


def held_out_sets(path: str | Path) -> list[str]:
    return [name for name, d in read_sets(path).items() if d.get("role", "train") != "train"]


def token_prior(domains: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Each domain's share of the corpus' train tokens: the prior mixtures are sampled around.
    A domain cut at `data.max_tokens` counts with its tokens before the cut
    (`corpus_train_tokens`), so the cap on shard size does not move the prior."""
    counts = {name: d.get("corpus_train_tokens", d["train_tokens"]) for name, d in domains.items()}
    total = sum(counts.values())
    if total <= 0:
        raise UserError("results/domains.json has no train tokens")
    return {name: c / total for name, c in counts.items()}


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


def read_csv(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(existing(path))


def mixture_frame(ids, domains: list[str], weights: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(weights, dtype=float), columns=list(domains))
    frame.insert(0, "id", list(ids))
    return frame


def weight_columns(frame: pd.DataFrame) -> list[str]:
    """The domain weight columns of a mixtures or proxies table."""
    return [c for c in frame.columns if c not in ("id", ROUND) and not c.startswith(SCORE_PREFIXES)]


def loss_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(LOSS_PREFIX)]


def score_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(SCORE_PREFIXES)]


def domain_losses(frame: pd.DataFrame) -> pd.DataFrame:
    """The `loss.<set>` columns of a proxies table, named by their set."""
    return frame[loss_columns(frame)].rename(columns=lambda c: c[len(LOSS_PREFIX) :])
