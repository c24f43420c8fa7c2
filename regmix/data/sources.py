"""Corpus sources: each yields `Record(split, domain, text)` for every document it holds.

- jsonl: `<path>/{train,valid}/<domain>-<k>.jsonl[.zst|.gz]`, one {"text": ...} per line
- pile:  `<path>/train/*.jsonl.zst` and `<path>/val.jsonl.zst`; domain = meta.pile_set_name
- hf:    any Hugging Face dataset (hub name or local data files), streamed with `datasets`

Sources without a validation split hold out `valid_fraction` of each domain's documents with
a seeded systematic sampler (exact proportions, independent of how domains interleave).
Malformed input raises UserError naming the file and line, or with `skip_bad_records` is
counted per file and skipped.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

from regmix.errors import UserError

JSONL_SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz")
VALID_SPLIT_NAMES = ("validation", "valid", "val")
# The Pile's shards are written with `zstd --long=31`: decoding needs the full 2 GiB window.
ZSTD_MAX_WINDOW = 2**31


def slug(name: str) -> str:
    """The one spelling of a domain name: lowercase, non-alphanumerics to `_`, collapsed."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


class Record(NamedTuple):
    split: str  # train | valid
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


# ------------------------------------------------------------------------- file reading
def has_jsonl_suffix(path: Path) -> bool:
    return path.name.endswith(JSONL_SUFFIXES)


def jsonl_stem(path: Path) -> str:
    """File name without its .jsonl[.zst|.gz] suffix."""
    for suffix in sorted(JSONL_SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def read_lines(path: Path) -> Iterator[bytes]:
    """The raw lines of a .jsonl, .jsonl.gz or .jsonl.zst file (any zstd window size)."""
    try:
        with path.open("rb") as raw:
            if path.name.endswith(".zst"):
                import zstandard

                reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(
                    raw, read_across_frames=True
                )
                stream: Any = io.BufferedReader(reader, buffer_size=1 << 20)
            elif path.name.endswith(".gz"):
                stream = gzip.GzipFile(fileobj=raw)
            else:
                stream = raw
            yield from stream
    except (OSError, EOFError, ValueError) as e:
        raise UserError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    except Exception as e:  # zstandard.ZstdError has no common base worth importing eagerly
        if type(e).__name__ == "ZstdError":
            raise UserError(f"{path}: corrupt zstd data ({e})") from None
        raise


def parse_line(line: bytes, path: Path, lineno: int, text_field: str, bad: BadRecords,
               domain: Optional[str] = None) -> Optional[dict]:
    """One JSON record from a line, or None for a blank line or a skipped bad record."""
    if not line.strip():
        return None
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        bad.report(path, lineno, f"not UTF-8 (byte {e.start} of the line)", domain)
        return None
    except json.JSONDecodeError as e:
        bad.report(path, lineno, f"invalid JSON ({e.msg}, column {e.colno})", domain)
        return None
    if not isinstance(field_of(record, text_field), str):
        bad.report(path, lineno, f"record has no string field {text_field!r}", domain)
        return None
    return record


def missing(path: Path, what: str) -> UserError:
    return UserError(f"{what} {path} does not exist")


# -------------------------------------------------------------------------------- jsonl
def domain_of_file(path: Path) -> str:
    """The raw domain name of `<domain>-<k>.jsonl`: everything before the last `-`."""
    stem = jsonl_stem(path)
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


def jsonl_domains(folder: Path) -> dict[str, list[Path]]:
    """{slugged domain: its files} of one split folder, refusing ambiguous names."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and has_jsonl_suffix(p))
    if not files:
        raise UserError(f"{folder} holds no {'/'.join(JSONL_SUFFIXES)} files")
    raw: dict[str, list[Path]] = {}
    for path in files:
        raw.setdefault(domain_of_file(path), []).append(path)
    # `web-0.jsonl` next to `web-news-0.jsonl`: is the second domain `web` or `web-news`?
    for a in raw:
        for b in raw:
            if b.startswith(a + "-"):
                raise UserError(
                    f"ambiguous domain names in {folder}: {raw[a][0].name} (domain {a!r}) and "
                    f"{raw[b][0].name} (domain {b!r}); rename one so no domain name is another's prefix followed by '-'"
                )
    domains: dict[str, list[Path]] = {}
    for name, paths in raw.items():
        key = slug(name)
        if not key:
            raise UserError(f"{paths[0]}: empty domain name")
        if key in domains:
            raise UserError(f"{paths[0].name} and {domains[key][0].name} in {folder} both name domain {key!r}")
        domains[key] = paths
    return domains


class JsonlSource:
    """RegMix's layout: `<path>/train/<domain>-<k>.jsonl` (+ `valid/`, else a holdout)."""

    def __init__(self, path: str | Path, text_field: str, valid_fraction: float, seed: int):
        self.root = Path(path)
        if not self.root.is_dir():
            raise missing(self.root, "data.path")
        if not (self.root / "train").is_dir():
            raise UserError(f"{self.root} has no train/ folder (expected train/<domain>-<k>.jsonl)")
        self.train = jsonl_domains(self.root / "train")
        self.valid = jsonl_domains(self.root / "valid") if (self.root / "valid").is_dir() else None
        if self.valid is not None:
            extra = sorted(set(self.valid) - set(self.train))
            if extra:
                raise UserError(f"{self.root / 'valid'}: domain(s) {', '.join(extra)} have no train files")
        self.text_field, self.valid_fraction, self.seed = text_field, valid_fraction, seed
        self.domains = sorted(self.train)

    def describe(self, domain: str) -> str:
        return f"jsonl:{self.root}"

    def _file_records(self, split: Optional[str], domain: str, paths: list[Path], bad: BadRecords,
                      holdout: Optional[Holdout]) -> Iterator[Record]:
        for path in paths:
            for lineno, line in enumerate(read_lines(path), 1):
                record = parse_line(line, path, lineno, self.text_field, bad, domain)
                if record is not None:
                    text = field_of(record, self.text_field)
                    yield Record(split or holdout.split(domain), domain, text)

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[Record]:
        holdout = None if self.valid is not None else Holdout(self.valid_fraction, self.seed)
        split = "train" if self.valid is not None else None
        yield from round_robin(
            self._file_records(split, d, paths, bad, holdout) for d, paths in self.train.items() if keep(d)
        )
        if self.valid is not None:
            yield from round_robin(
                self._file_records("valid", d, paths, bad, None) for d, paths in self.valid.items() if keep(d)
            )


# --------------------------------------------------------------------------------- pile
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


# ----------------------------------------------------------------------------------- hf
def local_data_files(path: Path) -> dict[str, list[str]] | str:
    """`data_files` for load_dataset from a folder in the jsonl or Pile layout, or a file/glob."""
    if not path.is_dir():
        if not path.exists() and not any(c in str(path) for c in "*?["):
            raise missing(path, "data.path")
        return str(path)
    train = sorted(str(p) for p in (path / "train").glob("*") if has_jsonl_suffix(p))
    valid = sorted(str(p) for p in (path / "valid").glob("*") if has_jsonl_suffix(p))
    valid += sorted(str(p) for p in path.glob("val.*") if has_jsonl_suffix(p))
    if not train:
        raise UserError(f"{path} has no train/*.jsonl[.zst|.gz] files")
    return {"train": train, "validation": valid} if valid else {"train": train}


class HFSource:
    """Any `datasets` dataset, streamed: the hub (offline cache honoured) or local data files."""

    def __init__(self, name: Optional[str], config: Optional[str], path: Optional[str], text_field: str,
                 domain_field: Optional[str], valid_fraction: float, seed: int):
        if not name:
            raise UserError("data.hf_name is required for source hf (a hub name, or `json` with data.path)")
        if not domain_field:
            raise UserError("data.domain_field is required for source hf (e.g. meta.pile_set_name)")
        self.name, self.config, self.text_field, self.domain_field = name, config, text_field, domain_field
        self.valid_fraction, self.seed = valid_fraction, seed
        self.data_files = local_data_files(Path(path)) if path else None
        self.domains = None

    def describe(self, domain: str) -> str:
        return f"hf:{self.name}" + (f"/{self.config}" if self.config else "")

    def _load(self):
        import datasets

        datasets.logging.set_verbosity_error()
        try:
            return datasets.load_dataset(self.name, self.config, data_files=self.data_files, streaming=True)
        except Exception as e:
            raise UserError(f"cannot load dataset {self.name!r}: {type(e).__name__}: {e}") from None

    def records(self, bad: BadRecords, keep: Callable[[str], bool]) -> Iterator[Record]:
        splits = self._load()
        if "train" not in splits:
            raise UserError(f"dataset {self.name!r} has no train split (splits: {', '.join(splits)})")
        valid = next((s for s in VALID_SPLIT_NAMES if s in splits), None)
        holdout = None if valid else Holdout(self.valid_fraction, self.seed)
        for split, name in (("train", "train"), ("valid", valid)):
            if name is None:
                continue
            where = f"{self.name}[{name}]"
            try:
                for i, record in enumerate(splits[name], 1):
                    text, domain_name = field_of(record, self.text_field), field_of(record, self.domain_field)
                    if not isinstance(text, str):
                        bad.report(where, i, f"record has no string field {self.text_field!r}")
                        continue
                    domain = slug(domain_name) if isinstance(domain_name, str) else ""
                    if not domain:
                        bad.report(where, i, f"record has no domain in field {self.domain_field!r}")
                        continue
                    if keep(domain):
                        yield Record(holdout.split(domain) if holdout else split, domain, text)
            except UserError:
                raise
            except Exception as e:
                raise UserError(f"reading {where}: {type(e).__name__}: {e}") from None
