"""The search's simulated mixtures and the best of them (regmix.choose.search).

The pool is drawn in chunks, each chunk from its own seed spawned from one, so any chunk can be
drawn again alike and the result does not depend on how many threads draw it. `scan` predicts
every chunk and keeps only its best rows per predictor (`TopK`), so memory stays at one chunk per
worker whatever the pool's size; `band_sum` draws again the chunks holding in-band mixtures.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from regmix.choose.regression import FittedRegressor
from regmix.choose.sampling import MixtureGenerator, accepted_draws
from regmix.config import SearchConfig
from regmix.progress import progress


@dataclass
class TopK:
    """The `k` lowest predictions seen so far and their mixtures, best first."""

    W: np.ndarray  # (k, d)
    pred: np.ndarray  # (k,)

    @classmethod
    def of(cls, W: np.ndarray, pred: np.ndarray, k: int) -> TopK:
        idx = np.argpartition(pred, k - 1)[:k] if len(pred) > k else np.arange(len(pred))
        idx = idx[np.argsort(pred[idx], kind="stable")]
        return cls(W[idx], pred[idx])

    def merge(self, other: TopK, k: int) -> TopK:
        return TopK.of(np.concatenate([self.W, other.W]), np.concatenate([self.pred, other.pred]), k)


class Pool:
    """The simulated mixtures: `size` draws from `gen` in chunks of `chunk_size`, each chunk from
    its own seed spawned from `seed`, so any chunk can be drawn again alike."""

    def __init__(self, gen: MixtureGenerator, size: int, chunk_size: int, seed: int):
        self.gen, self.size, self.chunk_size = gen, size, chunk_size
        self.chunks = -(-size // chunk_size)
        self.seeds = np.random.SeedSequence(seed).spawn(self.chunks)

    def draw(self, i: int) -> np.ndarray:
        """Chunk `i`'s mixtures (rows, columns in `gen.domains` order)."""
        size = min(self.chunk_size, self.size - i * self.chunk_size)
        return self.gen.weights(accepted_draws(self.gen, np.random.default_rng(self.seeds[i]), size))


def scan(
    model: FittedRegressor, pool: Pool, cfg: SearchConfig, cols: list[int], spread_end: int, threads: int
) -> tuple[list[TopK], list[np.ndarray]]:
    """Predict every chunk of the pool: [the base model's best rows, each member's top-k over the
    first `spread_end` mixtures], and for `band` every base prediction, chunk by chunk."""
    keep = cfg.top_k if cfg.rule == "top_k" and not cfg.prior_penalty else max(cfg.top_k, cfg.candidates)
    keep_all = cfg.rule == "band"

    def run_chunk(i: int) -> tuple[list[TopK], Optional[np.ndarray]]:
        W = pool.draw(i)
        X = np.ascontiguousarray(W[:, cols])
        pred = np.asarray(model.predict(X), dtype=float)
        tops = [TopK.of(W, pred, keep)]
        if i * cfg.chunk_size < spread_end:
            tops += [TopK.of(W, np.asarray(m.predict(X), dtype=float), cfg.top_k) for m in model.members]
        return tops, (pred if keep_all else None)

    tops: list[TopK] | None = None
    preds: list[np.ndarray] = []
    with ThreadPoolExecutor(threads) as workers:
        done = workers.map(run_chunk, range(pool.chunks))
        for chunk, pred in progress(done, total=pool.chunks, desc="search", unit="chunk", leave=False):
            if pred is not None:
                preds.append(pred)
            if tops is None:
                tops = chunk
            else:  # chunks past `spread_simulations` carry the model's best alone
                tops[0] = tops[0].merge(chunk[0], keep)
                tops[1 : len(chunk)] = [t.merge(c, cfg.top_k) for t, c in zip(tops[1:], chunk[1:])]
    assert tops is not None
    return tops, preds


def band_sum(
    pool: Pool,
    preds: list[np.ndarray],
    threshold: float,
    threads: int,
    penalty: Optional[Callable[[np.ndarray], np.ndarray]] = None,
) -> tuple[np.ndarray, int]:
    """The sum and count of every simulated mixture scored at or under `threshold`: its prediction,
    plus `penalty(W)` when given (never negative). The chunks holding one are drawn again."""
    hit = [i for i, p in enumerate(preds) if np.any(p <= threshold)]

    def part(i: int) -> tuple[np.ndarray, int]:
        W = pool.draw(i)
        inside = (preds[i] if penalty is None else preds[i] + penalty(W)) <= threshold
        return W[inside].sum(axis=0), int(inside.sum())

    with ThreadPoolExecutor(threads) as workers:
        parts = list(workers.map(part, hit))
    return np.sum([total for total, _ in parts], axis=0), sum(count for _, count in parts)
