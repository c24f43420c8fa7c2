"""Writing token shards: each document's ids appended to its split's and domain's shard, the
train cap applied, and every set's held-out documents split into valid and test (`ShardWriter`);
`check_splits` then says whether each split has the documents selection and the verdict need.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import numpy as np

from regmix.data.shards import shard_path
from regmix.errors import UserError
from regmix.progress import say

MIN_TEST_DOCUMENTS = 3  # held-out documents a set's test split needs: fewer make the verdict one document's


def choose_test_documents(n: int, fraction: float, key: str) -> np.ndarray:
    """Which of a set's `n` held-out documents go to test: `fraction` of them and at least
    `MIN_TEST_DOCUMENTS`, leaving valid at least one; evenly spaced from an offset seeded by `key`."""
    if n < 2:
        return np.arange(0)
    k = min(n - 1, max(MIN_TEST_DOCUMENTS, round(fraction * n)))
    u = random.Random(key).random()
    return np.floor((np.arange(k) + u) * n / k).astype(np.int64)


class ShardWriter:
    """Appends documents' tokens to `<split>/.<domain>.bin.tmp`; `close` renames them into place,
    and splits each set's held-out documents into valid and test (`choose_test_documents`)."""

    def __init__(self, root: Path, max_tokens: int | None, test_fraction: float = 0.5, seed: int = 0):
        self.root, self.max_tokens, self.test_fraction, self.seed = root, max_tokens, test_fraction, seed
        self.files: dict[tuple[str, str], object] = {}
        self.tokens: Counter[tuple[str, str]] = Counter()
        self.docs: Counter[tuple[str, str]] = Counter()
        self.offered: Counter[str] = Counter()  # train tokens per domain before `max_tokens`: the prior's counts
        self.held_lengths: dict[str, list[int]] = {}  # each held-out document's tokens, per set

    def _tmp(self, split: str, domain: str) -> Path:
        final = shard_path(self.root, split, domain)
        return final.with_name(f".{final.name}.tmp")

    def add(self, split: str, domain: str, ids: np.ndarray) -> None:
        key = (split, domain)
        if split == "train":
            self.offered[domain] += len(ids)
            if self.max_tokens is not None and self.tokens[key] >= self.max_tokens:
                return
        else:
            self.held_lengths.setdefault(domain, []).append(len(ids))
        if key not in self.files:
            self._tmp(split, domain).parent.mkdir(parents=True, exist_ok=True)
            self.files[key] = self._tmp(split, domain).open("wb")
        ids.tofile(self.files[key])
        self.tokens[key] += len(ids)
        self.docs[key] += 1

    def close(self, dtype: np.dtype) -> None:
        for (split, domain), f in self.files.items():
            f.close()
            tmp = self._tmp(split, domain)
            if split == "train" and self.max_tokens is not None and self.tokens[(split, domain)] > self.max_tokens:
                os.truncate(tmp, self.max_tokens * dtype.itemsize)  # the cap is exact
                self.tokens[(split, domain)] = self.max_tokens
            if split == "valid":
                self._split_held_out(domain, tmp, dtype)
            else:
                os.replace(tmp, shard_path(self.root, split, domain))

    def _split_held_out(self, domain: str, tmp: Path, dtype: np.dtype) -> None:
        """Write the valid and test shards of one set from its held-out documents."""
        lengths = np.array(self.held_lengths[domain], dtype=np.int64)
        test = np.zeros(len(lengths), dtype=bool)
        test[choose_test_documents(len(lengths), self.test_fraction, f"{self.seed}/{domain}/test")] = True
        ids = np.fromfile(tmp, dtype=dtype)
        docs = np.split(ids, np.cumsum(lengths)[:-1])
        for split, chosen in (("valid", ~test), ("test", test)):
            parts = [d for d, c in zip(docs, chosen) if c]
            if parts:
                path = shard_path(self.root, split, domain)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.concatenate(parts).tofile(path)
            self.docs[(split, domain)] = len(parts)
            self.tokens[(split, domain)] = int(sum(map(len, parts)))
        tmp.unlink()


def check_splits(writer: ShardWriter, domains: list[str], held_out: list[str]) -> None:
    """Every training domain has train documents, every set valid ones and a test split of at
    least `MIN_TEST_DOCUMENTS` documents."""
    if not domains:
        raise UserError("the corpus has no training domains (after include/exclude and data.eval_only)")
    for d in domains:
        if not writer.docs[("train", d)]:
            raise UserError(f"domain {d!r} has no train documents (empty domain)")
    for d in [*domains, *held_out]:
        valid, test = writer.docs[("valid", d)], writer.docs[("test", d)]
        what = f"held-out set {d!r}" if d not in domains else f"domain {d!r}"
        if not valid or not test:
            raise UserError(
                f"{what} has {valid + test} held-out document(s): selection (valid) and the verdict "
                f"(test) need one each at least; raise data.valid_fraction, or add documents"
            )
        if test < MIN_TEST_DOCUMENTS:
            say(
                f"warning: {what} has {valid + test} held-out documents, {test} of them in test: its verdict "
                f"rests on fewer than {MIN_TEST_DOCUMENTS} documents; raise data.valid_fraction"
            )
