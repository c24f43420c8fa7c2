"""JSONL files (plain, .gz or .zst) read and parsed line by line, and RegMix's own layout
as a source: `<path>/{train,valid}/<domain>-<k>.jsonl[.zst|.gz]`, one {"text": ...} per line.

The Pile and local Hugging Face data files are JSONL too: pile.py and hf.py read them with
the helpers here."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from regmix.data.sources.records import BadRecords, Holdout, Record, field_of, missing, round_robin, slug
from regmix.errors import UserError

JSONL_SUFFIXES = (".jsonl", ".jsonl.zst", ".jsonl.gz")
# The Pile's shards are written with `zstd --long=31`: decoding needs the full 2 GiB window.
ZSTD_MAX_WINDOW = 2**31


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


def parse_line(
    line: bytes, path: Path, lineno: int, text_field: str, bad: BadRecords, domain: Optional[str] = None
) -> Optional[dict]:
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


# ------------------------------------------------------------------- the jsonl layout
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

    def _file_records(
        self, split: Optional[str], domain: str, paths: list[Path], bad: BadRecords, holdout: Optional[Holdout]
    ) -> Iterator[Record]:
        for path in paths:
            texts = 0
            for lineno, line in enumerate(read_lines(path), 1):
                record = parse_line(line, path, lineno, self.text_field, bad, domain)
                if record is not None:
                    text = field_of(record, self.text_field)
                    texts += bool(text)
                    yield Record(split or holdout.split(domain), domain, text)
            if not texts and not bad.per_file[str(path)]:  # a broken export, not a domain with nothing to say
                raise UserError(
                    f"{path}: no text in field {self.text_field!r} (an empty file, or only empty "
                    "texts): fill it or remove it"
                )

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
