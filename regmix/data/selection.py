"""The stage's input records: the configured source, and which of its documents (and every
evaluation set's) the shards get, after include/exclude, `data.eval_only` and the per-domain cap.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

from regmix.config import DataConfig
from regmix.data.sources import (
    BadRecords,
    HFSource,
    JsonlSource,
    MegatronSource,
    NumpySource,
    PileSource,
    Record,
    TokenRecord,
    slug,
)
from regmix.data.sources.evalset import EvalSetSource
from regmix.errors import UserError
from regmix.progress import progress


def open_source(cfg: DataConfig, seed: int, cache: str | Path | None = None):
    """The configured source; `demo` builds (or reuses) the embedded corpus first."""
    if cfg.source == "demo":
        from regmix.data.demo import DemoSource

        return DemoSource(cfg.demo_chars, cfg.valid_fraction, seed, cache)
    if cfg.source == "jsonl":
        if not cfg.path:
            raise UserError("data.path is required for source jsonl")
        return JsonlSource(cfg.path, cfg.text_field, cfg.valid_fraction, seed)
    if cfg.source == "pile":
        if cfg.hf_name:
            return HFSource(
                cfg.hf_name,
                cfg.hf_config,
                cfg.path,
                cfg.text_field,
                cfg.domain_field or "meta.pile_set_name",
                cfg.valid_fraction,
                seed,
            )
        if not cfg.path:
            raise UserError("data.path (the Pile's folder) or data.hf_name is required for source pile")
        return PileSource(cfg.path, cfg.text_field, cfg.domain_field or "meta.pile_set_name", cfg.valid_fraction, seed)
    if cfg.source == "hf":
        return HFSource(
            cfg.hf_name, cfg.hf_config, cfg.path, cfg.text_field, cfg.domain_field, cfg.valid_fraction, seed
        )
    if cfg.source in ("megatron", "numpy"):
        if not cfg.path:
            raise UserError(f"data.path is required for source {cfg.source}")
        if not cfg.tokenizer.path:
            raise UserError(
                f"data.tokenizer.path is required for source {cfg.source}: the tokenizer that "
                "wrote the token ids (a tokenizer.json or a Hugging Face tokenizer name)"
            )
        if cfg.source == "megatron":
            return MegatronSource(cfg.path, cfg.valid_fraction, seed)
        return NumpySource(cfg.path, cfg.dtype, cfg.valid_fraction, seed)
    raise UserError(f"data.source must be demo, jsonl, pile, hf, megatron or numpy, got {cfg.source!r}")


def selected(
    source, cfg: DataConfig, bad: BadRecords, desc: str, eval_sets: Sequence[EvalSetSource] = ()
) -> Iterator[Record | TokenRecord]:
    """The source's records after include/exclude and the per-domain document cap, then every
    evaluation set's (all held out: `valid`, as is every document of a `data.eval_only` domain).
    ShardWriter splits each set's held-out documents into valid and test."""
    include, exclude = {slug(d) for d in cfg.include}, {slug(d) for d in cfg.exclude}
    eval_only = {slug(d) for d in cfg.eval_only}
    keep = lambda d: (not include or d in include) and d not in exclude  # noqa: E731
    docs: Counter[tuple[str, str]] = Counter()
    seen: set[str] = set()
    records = itertools.chain(source.records(bad, keep), *(s.records(bad) for s in eval_sets))
    for record in progress(records, desc=desc, unit=" docs", mininterval=1.0):
        seen.add(record.domain)
        if len(record[2]) == 0:  # an empty text, or a document of no tokens
            continue
        if record.domain in eval_only:
            record = record._replace(split="valid")
        key = (record.split, record.domain)
        if cfg.max_documents is not None and docs[key] >= cfg.max_documents:
            continue
        docs[key] += 1
        yield record
    absent = sorted(include - exclude - seen)
    if absent:
        raise UserError(f"data.include names domain(s) not in the corpus: {', '.join(absent)}")
    absent = sorted(eval_only - seen)
    if absent:
        raise UserError(
            f"data.eval_only names domain(s) not in the corpus (after include/exclude): {', '.join(absent)}"
        )


def train_texts(source, cfg: DataConfig) -> Iterator[str]:
    """Train-split texts up to the tokeniser's character budget."""
    budget = cfg.tokenizer.train_chars
    for record in selected(source, cfg, BadRecords(cfg.skip_bad_records), "reading (tokenizer)"):
        if record.split != "train":
            continue
        yield record.text[:budget]
        budget -= len(record.text)
        if budget <= 0:
            return
