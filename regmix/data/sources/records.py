"""What every source shares: the Record it yields, domain-name spelling, bad-record
accounting, the seeded validation holdout, dotted field lookup, domain interleaving and the
error for a missing path."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Optional

from regmix.errors import UserError
from regmix.target import slug  # noqa: F401  re-exported: the sources' one spelling


class Record(NamedTuple):
    split: str  # train | valid (prepare splits valid into valid and test)
    domain: str  # slugged
    text: str


class BadRecords:
    """Raise on a malformed record, or (skip_bad_records) count it per file and domain."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.per_file: Counter[str] = Counter()
        self.per_domain: Counter[str] = Counter()

    def report(self, path: str | Path, line: int, reason: str, domain: Optional[str] = None) -> None:
        if not self.skip:
            raise UserError(f"{path}:{line}: {reason} (set data.skip_bad_records=true to skip such records)")
        self.per_file[str(path)] += 1
        if domain is not None:
            self.per_domain[domain] += 1

    def summary(self) -> str:
        return "\n".join(f"skipped {n} bad record(s) in {path}" for path, n in sorted(self.per_file.items()))


class Holdout:
    """Sends `fraction` of each domain's documents to valid, evenly spaced from a seeded offset."""

    def __init__(self, fraction: float, seed: int):
        if not 0.0 <= fraction < 1.0:
            raise UserError(f"data.valid_fraction must be in [0, 1), got {fraction}")
        self.fraction, self.seed = fraction, seed
        self.seen: Counter[str] = Counter()
        self.offset: dict[str, float] = {}

    def split(self, domain: str) -> str:
        if domain not in self.offset:
            self.offset[domain] = random.Random(f"{self.seed}/{domain}").random()
        i, u = self.seen[domain], self.offset[domain]
        self.seen[domain] += 1
        crosses = math.floor((i + 1) * self.fraction + u) > math.floor(i * self.fraction + u)
        return "valid" if crosses else "train"


def field_of(record: Any, dotted: str) -> Any:
    """`record["a"]["b"]` for "a.b"; None when any step is missing."""
    for key in dotted.split("."):
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


def round_robin(iterators: Iterable[Iterator]) -> Iterator:
    """Alternate between iterators until all are exhausted (domains interleave, so the first
    N characters read, e.g. for tokeniser training, cover every domain)."""
    active = list(iterators)
    while active:
        for it in list(active):
            try:
                yield next(it)
            except StopIteration:
                active.remove(it)


def missing(path: Path, what: str) -> UserError:
    return UserError(f"{what} {path} does not exist")
