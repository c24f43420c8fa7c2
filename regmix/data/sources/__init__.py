"""Corpus sources: each yields `Record(split, domain, text)` for every document it holds.

- jsonl: `<path>/{train,valid}/<domain>-<k>.jsonl[.zst|.gz]`, one {"text": ...} per line
- pile:  `<path>/train/*.jsonl.zst` and `<path>/val.jsonl.zst`; domain = meta.pile_set_name
- hf:    any Hugging Face dataset (hub name or local data files), streamed with `datasets`
- megatron: `<path>/{train,valid}/<domain>[-<k>].{bin,idx}`, Megatron-LM / NeMo indexed datasets
- numpy: `<path>/{train,valid}/<domain>[-<k>].{npy,bin}`, flat token arrays split at end-of-text

Sources without a validation split hold out `valid_fraction` of each domain's documents with
a seeded systematic sampler (exact proportions, independent of how domains interleave).
Malformed input raises UserError naming the file and line, or with `skip_bad_records` is
counted per file and skipped.

Files (one source a module; a new source is one more module beside them, re-exported here):
- records.py: Record, slug, BadRecords, Holdout, field_of, round_robin, missing (shared)
- jsonl.py:   reading .jsonl[.zst|.gz] lines (also used by pile and hf) and JsonlSource
- pile.py:    PileSource
- hf.py:      HFSource
- pretokenized.py: TokenSource, TokenRecord and the id checks the two token sources share
- megatron.py: MegatronSource (and the .idx reader);  numpy_tokens.py: NumpySource
Token sources yield `TokenRecord(split, domain, tokens)` instead of text, once prepare has
given them the tokenizer's end-of-text id and vocabulary size (`use_vocabulary`).
A source has `records(bad, keep)`, `describe(domain)` and `domains` (sorted names when known
before reading, else None).
"""

from regmix.data.sources.hf import VALID_SPLIT_NAMES, HFSource, local_data_files
from regmix.data.sources.jsonl import (
    JSONL_SUFFIXES,
    ZSTD_MAX_WINDOW,
    JsonlSource,
    domain_of_file,
    has_jsonl_suffix,
    jsonl_domains,
    jsonl_stem,
    parse_line,
    read_lines,
)
from regmix.data.sources.megatron import MegatronIndex, MegatronSource, read_index
from regmix.data.sources.numpy_tokens import NumpySource
from regmix.data.sources.pile import PileSource
from regmix.data.sources.pretokenized import TokenRecord, TokenSource
from regmix.data.sources.records import BadRecords, Holdout, Record, field_of, missing, round_robin, slug

__all__ = [
    "BadRecords",
    "HFSource",
    "Holdout",
    "JSONL_SUFFIXES",
    "JsonlSource",
    "MegatronIndex",
    "MegatronSource",
    "NumpySource",
    "PileSource",
    "Record",
    "TokenRecord",
    "TokenSource",
    "VALID_SPLIT_NAMES",
    "ZSTD_MAX_WINDOW",
    "domain_of_file",
    "field_of",
    "has_jsonl_suffix",
    "jsonl_domains",
    "jsonl_stem",
    "local_data_files",
    "missing",
    "parse_line",
    "read_index",
    "read_lines",
    "round_robin",
    "slug",
]
