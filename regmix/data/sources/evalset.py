"""Evaluation sets: text a mixture is judged on and never trained on (params' `eval_sets`).

    eval_sets:
      news_2024: path/to/news.jsonl                  # a .jsonl[.zst|.gz] or .txt file, or a folder of them
      wiki_hf: {hf_name: wikitext, hf_config: wikitext-2-raw-v1, split: test, text_field: text}

A .jsonl record's text is its `text_field` (default `text`); a .txt file holds documents
separated by blank lines. Every document of a set is held out: prepare splits them into valid
(what selection reads) and test (what the verdict reads), tokenised with the run's tokenizer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

from regmix.data.sources.jsonl import JSONL_SUFFIXES, has_jsonl_suffix, parse_line, read_lines
from regmix.data.sources.records import BadRecords, Record, field_of
from regmix.errors import UserError
from regmix.target import EvalSetSpec

TXT_SUFFIX = ".txt"


def set_files(spec: EvalSetSpec) -> list[Path]:
    """The local files of a set, each a .jsonl[.zst|.gz] or .txt file."""
    path = Path(spec.path)
    readable = lambda p: p.is_file() and (has_jsonl_suffix(p) or p.name.endswith(TXT_SUFFIX))  # noqa: E731
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if readable(p))
        if not files:
            raise UserError(f"{spec.key}: {path} holds no {'/'.join(JSONL_SUFFIXES)} or {TXT_SUFFIX} files")
        return files
    if not path.exists():
        raise UserError(f"{spec.key}: {path} does not exist")
    if not readable(path):
        raise UserError(f"{spec.key}: {path} is not a {'/'.join(JSONL_SUFFIXES)} or {TXT_SUFFIX} file")
    return [path]


def txt_documents(path: Path, key: str) -> Iterator[str]:
    """The blank-line separated documents of a .txt file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{key}: {path} is not UTF-8 text (byte {e.start}): the tokenizer reads text") from None
    for doc in re.split(r"\n\s*\n", text):
        if doc.strip():
            yield doc.strip()


class EvalSetSource:
    """Every document of one evaluation set, as held-out (`valid`) records of domain `spec.name`."""

    def __init__(self, spec: EvalSetSpec):
        self.spec = spec

    def describe(self) -> str:
        s = self.spec
        return f"eval set: {s.path}" if s.path else f"eval set: hf:{s.hf_name}/{s.hf_config or ''}[{s.split}]"

    def texts(self, bad: BadRecords) -> Iterator[str]:
        s = self.spec
        if s.hf_name:
            yield from self._hf_texts()
            return
        for path in set_files(s):
            if path.name.endswith(TXT_SUFFIX):
                yield from txt_documents(path, s.key)
                continue
            for lineno, line in enumerate(read_lines(path), 1):
                record = parse_line(line, path, lineno, s.text_field, bad, s.name)
                if record is not None:
                    yield field_of(record, s.text_field)

    def _hf_texts(self) -> Iterator[str]:
        import datasets

        s = self.spec
        try:
            rows = datasets.load_dataset(s.hf_name, s.hf_config, split=s.split, streaming=True)
        except Exception as e:  # offline, unknown name or split: the hub's errors vary by version
            raise UserError(f"{s.key}: cannot load {s.hf_name!r} ({type(e).__name__}: {e})") from None
        for row in rows:
            text = field_of(row, s.text_field)
            if not isinstance(text, str):
                raise UserError(f"{s.key}: a record of {s.hf_name!r} has no string field {s.text_field!r}")
            yield text

    def records(self, bad: BadRecords, keep: Callable[[str], bool] = lambda d: True) -> Iterator[Record]:
        for text in self.texts(bad):
            yield Record("valid", self.spec.name, text)


def check_eval_set(spec: EvalSetSpec) -> None:
    """Before any compute: a local set's files exist, every record reads, and some text is not empty
    (a set is small beside the corpus: reading it twice costs little)."""
    if spec.hf_name:
        return  # read when prepare runs; the hub (or its cache) answers there
    if not any([bool(text.strip()) for text in EvalSetSource(spec).texts(BadRecords(False))]):
        raise UserError(f"{spec.key}: {spec.path} holds no non-empty text (field {spec.text_field!r})")
