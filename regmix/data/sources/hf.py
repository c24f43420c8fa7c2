"""Any Hugging Face dataset as a source (a hub name or local data files), streamed with
`datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional

from regmix.data.sources.jsonl import has_jsonl_suffix
from regmix.data.sources.records import BadRecords, Holdout, Record, field_of, missing, slug
from regmix.errors import UserError

VALID_SPLIT_NAMES = ("validation", "valid", "val")


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

    def __init__(
        self,
        name: Optional[str],
        config: Optional[str],
        path: Optional[str],
        text_field: str,
        domain_field: Optional[str],
        valid_fraction: float,
        seed: int,
    ):
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
