"""Duplicate check between held-out and train tokens: the share of a set's test 13-grams that
also occur somewhere in the train shards. A high share means the verdict reads text the models
trained on (copies, boilerplate, licence headers), so its losses flatter every mixture.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

NGRAM = 13
WARN_SHARE = 0.05  # prepare warns above this share
MAX_TRAIN_TOKENS = 50_000_000  # train tokens hashed per check: a bounded sample of a large corpus


def ngram_hashes(tokens: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """A 64-bit polynomial hash of every window of `n` consecutive tokens (uint64, len - n + 1)."""
    ids = np.asarray(tokens, dtype=np.uint64)
    if len(ids) < n:
        return np.empty(0, dtype=np.uint64)
    out = np.zeros(len(ids) - n + 1, dtype=np.uint64)
    base = np.uint64(1_000_003)
    with np.errstate(over="ignore"):  # wrap-around is the hash
        for k in range(n):
            out = out * base + ids[k : len(ids) - n + 1 + k] + np.uint64(1)
    return out


def train_ngrams(streams: Iterable[np.ndarray], max_tokens: int = MAX_TRAIN_TOKENS) -> np.ndarray:
    """The sorted unique hashes of the train streams' n-grams, at most `max_tokens` tokens in all
    (spread evenly over the streams: each contributes its share from its start)."""
    streams = list(streams)
    share = max_tokens // max(1, len(streams))
    parts = [ngram_hashes(np.asarray(s[:share])) for s in streams]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def overlap_share(test: np.ndarray, train: np.ndarray) -> float:
    """The share of `test`'s n-grams whose hash is among `train`'s (sorted unique hashes)."""
    hashes = ngram_hashes(test)
    if len(hashes) == 0:
        return 0.0
    return float(np.isin(hashes, train, assume_unique=False).mean())
