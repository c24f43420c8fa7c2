"""The Pile's release as a source: `<path>/train/*.jsonl.zst` and `<path>/val.jsonl.zst`;
the domain of a document is its meta.pile_set_name."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from regmix.data.sources.jsonl import has_jsonl_suffix, parse_line, read_lines
from regmix.data.sources.records import BadRecords, Holdout, Record, field_of, missing, slug
from regmix.errors import UserError


class PileSource:
    """The Pile's release: `train/*.jsonl.zst` then `val.jsonl.zst` (else a holdout)."""

    def __init__(self, path: str | Path, text_field: str, domain_field: str, valid_fraction: float, seed: int):
        self.root = Path(path)
        if not self.root.is_dir():
            raise missing(self.root, "data.path")
        train_dir = self.root / "train"
        self.train_files = sorted(p for p in train_dir.glob("*") if has_jsonl_suffix(p)) if train_dir.is_dir() else []
        if not self.train_files:
            raise UserError(f"{self.root} has no train/*.jsonl.zst files (the Pile's layout)")
        self.valid_files = sorted(p for p in self.root.glob("val.*") if has_jsonl_suffix(p))
        self.text_field, self.domain_field = text_field, domain_field
        self.valid_fraction, self.seed = valid_fraction, seed
        self.domains = None  # known only after reading

    def describe(self, domain: str) -> str:
        return f"pile:{self.root}"

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[Record]:
        holdout = None if self.valid_files else Holdout(self.valid_fraction, self.seed)
        for split, files in (("train", self.train_files), ("valid", self.valid_files)):
            for path in files:
                for lineno, line in enumerate(read_lines(path), 1):
                    record = parse_line(line, path, lineno, self.text_field, bad)
                    if record is None:
                        continue
                    name = field_of(record, self.domain_field)
                    domain = slug(name) if isinstance(name, str) else ""
                    if not domain:
                        bad.report(path, lineno, f"record has no domain in field {self.domain_field!r}")
                        continue
                    if keep(domain):
                        part = holdout.split(domain) if holdout else split
                        yield Record(part, domain, field_of(record, self.text_field))
