"""Token shards: one flat binary array per (split, domain), readable with np.memmap.

Layout under a tokens folder (the `prepare` stage writes `data/tokens`):

    meta.json                 {"vocab_size", "eot_id", "dtype", "domains", "held_out", "tasks"}
    tokenizer.json            the tokeniser that made the shards
    train/<domain>.bin        documents' tokens, each followed by the end-of-text token
    valid/<set>.bin           held-out documents that selection (proxies, fit, search, verify) reads
    test/<set>.bin            other held-out documents, that only the verdict (evaluate) reads
    tasks/<name>.<split>.jsonl  each task's examples, split alike

A set is a training domain (`domains`: train, valid and test shards) or a held-out set
(`held_out`: a `data.eval_only` domain or an evaluation set; valid and test shards only).

uint16 when the vocabulary fits, else uint32: the shape nanoGPT and lit-gpt use.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regmix.errors import UserError
from regmix.files import file_digest, read_json, write_json

SPLITS = ("train", "valid", "test")
HELD_OUT_SPLITS = ("valid", "test")
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class TokenMeta:
    vocab_size: int
    eot_id: int
    dtype: str
    domains: list[str]  # training domains: the mixtures' weights
    held_out: list[str] = field(default_factory=list)  # scored, never trained on
    tasks: list[str] = field(default_factory=list)  # multiple-choice tasks (regmix.data.tasks)

    @property
    def scored(self) -> list[str]:
        """Every set a model is scored on: the training domains, then the held-out sets."""
        return [*self.domains, *self.held_out]


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every token id."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def shard_path(root: str | Path, split: str, domain: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return Path(root) / split / f"{domain}.bin"


def write_meta(root: str | Path, meta: TokenMeta) -> None:
    write_json(Path(root) / META_FILE, asdict(meta))


def read_meta(root: str | Path) -> TokenMeta:
    return TokenMeta(**read_json(Path(root) / META_FILE))


def task_path(root: str | Path, name: str, split: str) -> Path:
    return Path(root) / "tasks" / f"{name}.{split}.jsonl"


def open_tokens(root: str | Path, split: str, domain: str) -> np.memmap:
    """Memory-map one domain's token stream (read-only; nothing is loaded up front)."""
    meta = read_meta(root)
    path = shard_path(root, split, domain)
    if not path.exists():
        raise UserError(f"no {split} tokens for domain {domain!r}: {path} is missing")
    return np.memmap(path, dtype=meta.dtype, mode="r")


def data_signature(tokens_dir: str | Path, domains: list[str], split: str = "train") -> dict[str, Any]:
    """Cheap identity of the token data: meta, tokenizer and each `split` shard's size and ends.

    Hashing every byte of a 25B-token corpus would take minutes; the size plus the first
    and last MiB catch a re-tokenised or re-filtered corpus. The held-out sets and tasks are
    not part of it: adding one keeps every proxy (it is scored, not trained again).
    """
    tokens_dir = Path(tokens_dir)
    meta = read_meta(tokens_dir)  # what decides training: not the held-out sets or tasks scored beside it
    sig: dict[str, Any] = {
        "meta": [meta.vocab_size, meta.eot_id, meta.dtype, meta.domains],
        "tokenizer": file_digest(tokens_dir / TOKENIZER_FILE),
    }
    for domain in domains:
        path = shard_path(tokens_dir, split, domain)
        size = path.stat().st_size
        h = hashlib.sha256()
        with path.open("rb") as f:
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
        sig[domain] = [size, h.hexdigest()]
    return sig
