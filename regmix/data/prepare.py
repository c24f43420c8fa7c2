"""Source -> tokeniser -> token shards, and the per-domain table (results/domains.json).

Two streaming passes over the source: the first trains the BPE on up to `train_chars`
characters of train text (domains interleave, so every domain is in it), the second
tokenises everything (in local worker processes, or as Ray tasks on a cluster with
REGMIX_BACKEND=ray: `encoders`) and appends each document to its domain's shard, in order.
Pre-tokenised sources (megatron, numpy) skip both: their documents' ids, checked against
the user's tokenizer, are copied from memory maps into the same shards.
All shards are written into a staging folder that replaces the tokens folder only when
every check has passed: a failed or killed run leaves the previous output untouched.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
import itertools
import random
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from regmix import runtime
from regmix.config import DataConfig
from regmix.data import tokenizer as tok
from regmix.data.overlap import WARN_SHARE, overlap_share, train_ngrams
from regmix.data.shards import (SPLITS, TOKENIZER_FILE, TokenMeta, dtype_for, open_tokens, shard_path, task_path,
                                write_meta)
from regmix.data.sources import (BadRecords, HFSource, JsonlSource, MegatronSource, NumpySource, PileSource,
                                 Record, TokenRecord, TokenSource, slug)
from regmix.errors import UserError
from regmix.config import eval_set_specs
from regmix.data.sources.evalset import EvalSetSource, check_eval_set
from regmix.progress import progress, say
from regmix.data.tasks import read_task, split_examples, write_task

CHUNK_CHARS = 1 << 20  # text per task sent to a tokeniser process
CHUNK_DOCS = 1024
MIN_TEST_DOCUMENTS = 3  # held-out documents a set's test split needs: fewer make the verdict one document's


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
            return HFSource(cfg.hf_name, cfg.hf_config, cfg.path, cfg.text_field,
                            cfg.domain_field or "meta.pile_set_name", cfg.valid_fraction, seed)
        if not cfg.path:
            raise UserError("data.path (the Pile's folder) or data.hf_name is required for source pile")
        return PileSource(cfg.path, cfg.text_field, cfg.domain_field or "meta.pile_set_name",
                          cfg.valid_fraction, seed)
    if cfg.source == "hf":
        return HFSource(cfg.hf_name, cfg.hf_config, cfg.path, cfg.text_field, cfg.domain_field,
                        cfg.valid_fraction, seed)
    if cfg.source in ("megatron", "numpy"):
        if not cfg.path:
            raise UserError(f"data.path is required for source {cfg.source}")
        if not cfg.tokenizer.path:
            raise UserError(f"data.tokenizer.path is required for source {cfg.source}: the tokenizer that "
                            "wrote the token ids (a tokenizer.json or a Hugging Face tokenizer name)")
        if cfg.source == "megatron":
            return MegatronSource(cfg.path, cfg.valid_fraction, seed)
        return NumpySource(cfg.path, cfg.dtype, cfg.valid_fraction, seed)
    raise UserError(f"data.source must be demo, jsonl, pile, hf, megatron or numpy, got {cfg.source!r}")


def selected(source, cfg: DataConfig, bad: BadRecords, desc: str,
             eval_sets: Sequence[EvalSetSource] = ()) -> Iterator[Record | TokenRecord]:
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
        raise UserError(f"data.eval_only names domain(s) not in the corpus (after include/exclude): "
                        f"{', '.join(absent)}")


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


def chunks(records: Iterator[Record]) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    chars = 0
    for record in records:
        chunk.append(record)
        chars += len(record.text)
        if chars >= CHUNK_CHARS or len(chunk) >= CHUNK_DOCS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def choose_test_documents(n: int, fraction: float, key: str) -> np.ndarray:
    """Which of a set's `n` held-out documents go to test: `fraction` of them and at least
    `MIN_TEST_DOCUMENTS`, leaving valid at least one; evenly spaced from an offset seeded by `key`."""
    if n < 2:
        return np.arange(0)
    k = min(n - 1, max(MIN_TEST_DOCUMENTS, round(fraction * n)))
    u = random.Random(key).random()
    return np.floor((np.arange(k) + u) * n / k).astype(np.int64)


class ShardWriter:
    """Appends documents' tokens to `<split>/.<domain>.bin.tmp`; `close` renames them into place,
    and splits each set's held-out documents into valid and test (`test_documents`)."""

    def __init__(self, root: Path, max_tokens: int | None, test_fraction: float = 0.5, seed: int = 0):
        self.root, self.max_tokens, self.test_fraction, self.seed = root, max_tokens, test_fraction, seed
        self.files: dict[tuple[str, str], object] = {}
        self.tokens: Counter[tuple[str, str]] = Counter()
        self.docs: Counter[tuple[str, str]] = Counter()
        self.offered: Counter[str] = Counter()  # train tokens per domain before `max_tokens`: the prior's counts
        self.held_lengths: dict[str, list[int]] = {}  # each held-out document's tokens, per set

    def _tmp(self, split: str, domain: str) -> Path:
        final = shard_path(self.root, split, domain)
        return final.with_name(f".{final.name}.tmp")

    def add(self, split: str, domain: str, ids: np.ndarray) -> None:
        key = (split, domain)
        if split == "train":
            self.offered[domain] += len(ids)
            if self.max_tokens is not None and self.tokens[key] >= self.max_tokens:
                return
        else:
            self.held_lengths.setdefault(domain, []).append(len(ids))
        if key not in self.files:
            self._tmp(split, domain).parent.mkdir(parents=True, exist_ok=True)
            self.files[key] = self._tmp(split, domain).open("wb")
        ids.tofile(self.files[key])
        self.tokens[key] += len(ids)
        self.docs[key] += 1

    def close(self, dtype: np.dtype) -> None:
        for (split, domain), f in self.files.items():
            f.close()
            tmp = self._tmp(split, domain)
            if split == "train" and self.max_tokens is not None and self.tokens[(split, domain)] > self.max_tokens:
                os.truncate(tmp, self.max_tokens * dtype.itemsize)  # the cap is exact
                self.tokens[(split, domain)] = self.max_tokens
            if split == "valid":
                self._split_held_out(domain, tmp, dtype)
            else:
                os.replace(tmp, shard_path(self.root, split, domain))

    def _split_held_out(self, domain: str, tmp: Path, dtype: np.dtype) -> None:
        """Write the valid and test shards of one set from its held-out documents."""
        lengths = np.array(self.held_lengths[domain], dtype=np.int64)
        test = np.zeros(len(lengths), dtype=bool)
        test[choose_test_documents(len(lengths), self.test_fraction, f"{self.seed}/{domain}/test")] = True
        ids = np.fromfile(tmp, dtype=dtype)
        docs = np.split(ids, np.cumsum(lengths)[:-1])
        for split, chosen in (("valid", ~test), ("test", test)):
            parts = [d for d, c in zip(docs, chosen) if c]
            if parts:
                path = shard_path(self.root, split, domain)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.concatenate(parts).tofile(path)
            self.docs[(split, domain)] = len(parts)
            self.tokens[(split, domain)] = int(sum(map(len, parts)))
        tmp.unlink()


def tokenize(source, cfg: DataConfig, tokenizer_json: str, dtype: np.dtype, root: Path, bad: BadRecords,
             workers: int | None, backend: str | None = None, ray_address: str | None = None, seed: int = 0,
             eval_sets: Sequence[EvalSetSource] = ()) -> ShardWriter:
    """Tokenise every selected record into shards under `root`: chunks go to the encoders
    `encoders` chooses and are written back in order, so the shards do not depend on them."""
    writer = ShardWriter(root, cfg.max_tokens, cfg.test_fraction, seed)

    def write(chunk: list[Record], future: Future) -> None:
        flat, lengths = future.result()
        for record, piece in zip(chunk, np.split(flat, np.cumsum(lengths)[:-1])):
            writer.add(record.split, record.domain, piece)

    with encoders(tokenizer_json, dtype, workers, backend, ray_address) as (submit, slots):
        pending: deque = deque()
        for chunk in chunks(selected(source, cfg, bad, "reading + tokenizing", eval_sets)):
            pending.append((chunk, submit([r.text for r in chunk])))
            # Bounded look-ahead keeps memory flat while every encoder stays busy.
            while len(pending) > 2 * slots or (pending and pending[0][1].done()):
                write(*pending.popleft())
        for chunk, future in pending:
            write(chunk, future)
    writer.close(dtype)
    return writer


@contextmanager
def encoders(tokenizer_json: str, dtype: np.dtype, workers: int | None, backend: str | None = None,
             ray_address: str | None = None) -> Iterator[tuple[Callable[[list[str]], Future], int]]:
    """Where texts are tokenised, chosen here alone: `submit(texts)` (a future of their ids and
    lengths, see `tok.Encoder.encode`) and how many chunks are encoded at once.

    `backend` (default REGMIX_BACKEND) "ray": Ray tasks on the cluster at `ray_address`
    (default REGMIX_RAY_ADDRESS, else start or reuse a local Ray), `workers` at a time (None:
    REGMIX_WORKERS, else the cluster's CPUs); each Ray worker process builds its encoder once.
    Otherwise `workers` local processes (None: REGMIX_WORKERS, else one per core), or this
    process alone for one.
    """
    if (backend or os.environ.get("REGMIX_BACKEND")) == "ray":
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address or os.environ.get("REGMIX_RAY_ADDRESS"), log_to_driver=False)
        task = ray.remote(num_cpus=1, max_retries=3)(_encode_on_ray)
        tokenizer = [ray.put(tokenizer_json)]  # in a list: sent by reference, fetched once per worker
        slots = workers or runtime.positive_env("REGMIX_WORKERS") or int(ray.cluster_resources().get("CPU", 1))
        yield (lambda texts: task.remote(tokenizer, dtype.name, texts).future()), max(1, slots)
        return
    workers = workers or runtime.workers()
    if workers <= 1:  # in this process: no start-up cost, and tracebacks stay readable
        encoder = tok.Encoder(tokenizer_json, dtype.name)
        yield (lambda texts: _done(encoder.encode(texts))), 1
        return
    # spawn, not fork: the parent's tokenizers thread pool must not be forked. An executor
    # (not a Pool) fails loudly if a worker dies instead of waiting for it forever.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, ctx, tok.init_worker, (tokenizer_json, dtype.name)) as pool:
        yield functools.partial(pool.submit, tok.encode_in_worker), workers


def _done(result: Any) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


_ray_encoder: tuple[str, tok.Encoder] | None = None  # in a Ray worker: (tokenizer reference, its encoder)


def _encode_on_ray(tokenizer: list, dtype: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A Ray task: `texts` through this worker process's encoder, built on its first task from
    the tokenizer JSON behind the object reference `tokenizer[0]`."""
    global _ray_encoder
    key = tokenizer[0].hex()
    if _ray_encoder is None or _ray_encoder[0] != key:
        import ray

        _ray_encoder = (key, tok.Encoder(ray.get(tokenizer[0]), dtype))
    return _ray_encoder[1].encode(texts)


def copy_tokens(source: TokenSource, cfg: DataConfig, eot: int, dtype: np.dtype, root: Path,
                bad: BadRecords, seed: int, eval_sets: Sequence[EvalSetSource] = (),
                encoder: tok.Encoder | None = None) -> ShardWriter:
    """Copy every selected pre-tokenised document, with an end-of-text, into shards under `root`;
    evaluation sets (text) go through `encoder`."""
    writer = ShardWriter(root, cfg.max_tokens, cfg.test_fraction, seed)
    for record in selected(source, cfg, bad, "copying tokens", eval_sets):
        if isinstance(record, Record):  # an evaluation set's text
            writer.add(record.split, record.domain, encoder.encode([record.text])[0])
            continue
        ids = np.empty(len(record.tokens) + 1, dtype)
        ids[:-1], ids[-1] = record.tokens, eot
        writer.add(record.split, record.domain, ids)
    writer.close(dtype)
    return writer


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A fresh folder beside `final` that replaces it on success and vanishes on failure."""
    stage = final.with_name(f".{final.name}.partial")
    old = final.with_name(f".{final.name}.old")
    for path in (stage, old):
        shutil.rmtree(path, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
        if final.exists():
            final.rename(old)
        stage.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def prepare(cfg: DataConfig, seed: int, tokens_dir: str | Path, cache: str | Path | None = None,
            workers: int | None = 1, backend: str | None = None, ray_address: str | None = None,
            eval_sets: Mapping[str, Any] | None = None, tasks: Mapping[str, str] | None = None) -> dict:
    """Build `tokens_dir` (shards, tokenizer.json, meta.json, tasks/) and return the sets table.

    `eval_sets` and `tasks` are params' sections of the same names (regmix.data.sources.evalset,
    regmix.data.tasks). Text is tokenised in `workers` local processes or, with `backend` "ray"
    (default: the REGMIX_BACKEND of the proxies), as Ray tasks on the cluster at `ray_address`
    (see `encoders`); the shards depend on none of it."""
    source = open_source(cfg, seed, cache)
    specs = eval_set_specs(eval_sets, getattr(source, "domains", None))
    for spec in specs:  # bad files fail before any compute
        check_eval_set(spec)
    task_sets = {name: split_examples(read_task(path, name)) for name, path in (tasks or {}).items()}
    sets = [EvalSetSource(spec) for spec in specs]
    tokens_dir = Path(tokens_dir)
    with staging(tokens_dir) as stage:
        if cfg.tokenizer.path:
            tokenizer = tok.load_tokenizer(cfg.tokenizer.path)
        else:
            tokenizer = tok.train_bpe(train_texts(source, cfg), cfg.tokenizer.vocab_size)
        eot, vocab = tok.eot_id(tokenizer), tok.vocab_size(tokenizer)
        tokenizer.save(str(stage / TOKENIZER_FILE))
        dtype = dtype_for(vocab)
        bad = BadRecords(cfg.skip_bad_records)
        if isinstance(source, TokenSource):
            source.use_vocabulary(eot, vocab)
            writer = copy_tokens(source, cfg, eot, dtype, stage, bad, seed, sets,
                                 tok.Encoder(tokenizer.to_str(), dtype.name))
        else:
            writer = tokenize(source, cfg, tokenizer.to_str(), dtype, stage, bad, workers, backend, ray_address,
                              seed, sets)
        if bad.per_file:
            print(bad.summary())
        held_out = sorted({slug(d) for d in cfg.eval_only}) + [s.name for s in specs]
        domains = sorted({d for _, d in writer.docs} - set(held_out))
        check_splits(writer, domains, held_out)
        for name, parts in task_sets.items():
            for split, examples in parts.items():
                write_task(task_path(stage, name, split), examples)
        write_meta(stage, TokenMeta(vocab_size=vocab, eot_id=eot, dtype=dtype.name, domains=domains,
                                    held_out=held_out, tasks=list(task_sets)))
    describe = {s.spec.name: s.describe() for s in sets}
    return sets_table(writer, tokens_dir, domains, held_out, lambda d: describe.get(d) or source.describe(d), bad)


def check_splits(writer: ShardWriter, domains: list[str], held_out: list[str]) -> None:
    """Every training domain has train documents, every set valid ones and a test split of at
    least `MIN_TEST_DOCUMENTS` documents."""
    if not domains:
        raise UserError("the corpus has no training domains (after include/exclude and data.eval_only)")
    for d in domains:
        if not writer.docs[("train", d)]:
            raise UserError(f"domain {d!r} has no train documents (empty domain)")
    for d in [*domains, *held_out]:
        valid, test = writer.docs[("valid", d)], writer.docs[("test", d)]
        what = f"held-out set {d!r}" if d not in domains else f"domain {d!r}"
        if not valid or not test:
            raise UserError(f"{what} has {valid + test} held-out document(s): selection (valid) and the verdict "
                            f"(test) need one each at least; raise data.valid_fraction, or add documents")
        if test < MIN_TEST_DOCUMENTS:
            say(f"warning: {what} has {valid + test} held-out documents, {test} of them in test: its verdict "
                f"rests on fewer than {MIN_TEST_DOCUMENTS} documents; raise data.valid_fraction")


def sets_table(writer: ShardWriter, tokens_dir: Path, domains: list[str], held_out: list[str],
               describe: Callable[[str], str], bad: BadRecords) -> dict:
    """results/domains.json: per set its role, documents and tokens per split, its source, and the
    share of its test 13-grams found in train (warned above `WARN_SHARE`)."""
    train = train_ngrams(open_tokens(tokens_dir, "train", d) for d in domains)
    table = {}
    for d in [*domains, *held_out]:
        entry: dict[str, Any] = {"role": "train" if d in domains else "held_out",
                                 "documents": sum(writer.docs[(s, d)] for s in SPLITS)}
        for split in SPLITS:
            if writer.docs[(split, d)]:
                entry[f"{split}_documents"] = int(writer.docs[(split, d)])
                entry[f"{split}_tokens"] = int(writer.tokens[(split, d)])
        entry["source"] = describe(d)
        if writer.offered[d] > entry.get("train_tokens", 0) and d in domains:  # cut at data.max_tokens
            entry["corpus_train_tokens"] = int(writer.offered[d])
        if bad.per_domain[d]:
            entry["skipped"] = int(bad.per_domain[d])
        entry["test_13gram_in_train"] = round(overlap_share(open_tokens(tokens_dir, "test", d), train), 4)
        if entry["test_13gram_in_train"] > WARN_SHARE:
            say(f"warning: {entry['test_13gram_in_train']:.1%} of {d!r}'s test 13-grams occur in the train "
                f"shards (above {WARN_SHARE:.0%}): its test scores flatter every mixture; deduplicate the data")
        table[d] = entry
    return table
