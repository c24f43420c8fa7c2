"""What the pre-tokenised sources (megatron.py, numpy_tokens.py) share: the folder layout,
the seeded holdout, and the checks that the files' token ids belong to the user's tokenizer.

Layout as for jsonl: `<path>/train/<domain>[-<k>].<suffix>` (+ `valid/`, else `valid_fraction`
of each domain's documents is held out, seeded); a domain's files share the name before the
last `-<k>` (jsonl's rule, `domain_of_file`). A source yields `TokenRecord(split, domain,
tokens)`: one document's ids, without its end-of-text, as a view into a memory-mapped file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Optional

import numpy as np

from regmix.data.sources.jsonl import domain_of_file
from regmix.data.sources.records import BadRecords, Holdout, missing, slug
from regmix.errors import UserError

BLOCK = 1 << 24  # tokens checked (and scanned for end-of-text) at a time: memory stays flat


class TokenRecord(NamedTuple):
    split: str  # train | valid
    domain: str  # slugged
    tokens: np.ndarray  # one document's ids, end-of-text excluded


def check_dtype(dtype: np.dtype, vocab: int, path: Path) -> None:
    """Refuse a token dtype that cannot hold every id of the vocabulary (or is not integer)."""
    if dtype.kind not in "ui":
        raise UserError(f"{path}: token dtype {dtype} is not an integer type")
    if np.iinfo(dtype).max < vocab - 1:
        raise UserError(
            f"{path}: token dtype {dtype} cannot hold the ids of the tokenizer's "
            f"{vocab}-token vocabulary (is data.tokenizer.path the tokenizer that wrote it?)"
        )


def check_ids(ids: np.ndarray, vocab: int, path: Path, where: str) -> None:
    """Refuse ids outside [0, vocab): the file was written with another tokenizer."""
    if len(ids) and (int(ids.max()) >= vocab or (ids.dtype.kind == "i" and int(ids.min()) < 0)):
        bad = int(ids[(ids < 0) | (ids >= vocab)][0])
        raise UserError(
            f"{path}: token id {bad} ({where}) is outside the tokenizer's {vocab}-token "
            "vocabulary (is data.tokenizer.path the tokenizer that wrote it?)"
        )


def memmap(path: Path, dtype: np.dtype, offset: int = 0) -> np.ndarray:
    """A read-only map of the tokens after `offset` bytes (empty for an empty file)."""
    size = path.stat().st_size - offset
    if size % dtype.itemsize:
        raise UserError(f"{path}: {size} bytes of tokens is not a whole number of {dtype} ids")
    if size == 0:
        return np.empty(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset)


def split_domains(folder: Path, files: list[Path], layout: str) -> dict[str, list[Path]]:
    """{slugged domain: its files, sorted} by jsonl's prefix rule, refusing ambiguous names."""
    if not files:
        raise UserError(f"{folder} holds no token files (expected {layout})")
    by_name: dict[str, list[Path]] = {}
    for path in sorted(files):
        by_name.setdefault(domain_of_file(path.with_suffix("")), []).append(path)
    names = sorted(by_name)
    clash = next(((a, b) for a in names for b in names if b.startswith(a + "-")), None)
    if clash:
        (a, first), (b, second) = ((n, by_name[n][0].name) for n in clash)
        raise UserError(
            f"ambiguous domain names in {folder}: {first} (domain {a!r}) and {second} (domain "
            f"{b!r}); rename one so no domain name is another's prefix followed by '-'"
        )
    domains: dict[str, list[Path]] = {}
    for name in names:
        key = slug(name)
        if not key or key in domains:
            other = f" and {domains[key][0].name} both name domain {key!r}" if key else ": empty domain name"
            raise UserError(f"{by_name[name][0]}{other}")
        domains[key] = by_name[name]
    return domains


class TokenSource:
    """A folder of pre-tokenised domains. Subclasses give `kind`, `layout` (for messages),
    `files(folder)` (the files that make up domains) and `documents(path)` (one file's
    documents, checked)."""

    kind = ""
    layout = ""

    def __init__(self, path: str | Path, valid_fraction: float, seed: int):
        self.root = Path(path)
        if not self.root.is_dir():
            raise missing(self.root, "data.path")
        if not (self.root / "train").is_dir():
            raise UserError(f"{self.root} has no train/ folder (expected train/{self.layout})")
        self.train = split_domains(self.root / "train", self.files(self.root / "train"), self.layout)
        valid = self.root / "valid"
        self.valid = split_domains(valid, self.files(valid), self.layout) if valid.is_dir() else None
        extra = sorted(set(self.valid or ()) - set(self.train))
        if extra:
            raise UserError(f"{valid}: domain(s) {', '.join(extra)} have no train files")
        self.valid_fraction, self.seed = valid_fraction, seed
        self.domains = sorted(self.train)
        self.eot: Optional[int] = None
        self.vocab: Optional[int] = None

    def files(self, folder: Path) -> list[Path]:
        raise NotImplementedError

    def documents(self, path: Path) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def use_vocabulary(self, eot: int, vocab: int) -> None:
        """The tokenizer's end-of-text id and vocabulary size, which every file is checked against."""
        self.eot, self.vocab = eot, vocab

    def describe(self, domain: str) -> str:
        return f"{self.kind}:{self.root}"

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[TokenRecord]:
        if self.vocab is None:
            raise RuntimeError("use_vocabulary() must come before records()")
        holdout = None if self.valid is not None else Holdout(self.valid_fraction, self.seed)
        for split, domains in (("train", self.train), ("valid", self.valid or {})):
            for domain, paths in domains.items():
                if not keep(domain):
                    continue
                found = 0
                for path in paths:
                    for tokens in self.documents(path):
                        found += len(tokens) > 0
                        yield TokenRecord(holdout.split(domain) if holdout else split, domain, tokens)
                if not found:
                    names = ", ".join(str(p) for p in paths)
                    raise UserError(f"{names}: no documents (domain {domain!r} is empty)")
