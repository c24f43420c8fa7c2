"""Selected records into a `ShardWriter`: text chunks tokenised by `encoders` (local worker
processes, or Ray tasks on a cluster with REGMIX_BACKEND=ray) and written back in order, or
pre-tokenised documents' ids copied with an end-of-text.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from regmix import runtime
from regmix.config import DataConfig
from regmix.data import tokenizer as tok
from regmix.data.selection import selected
from regmix.data.shard_writer import ShardWriter
from regmix.data.sources import BadRecords, Record, TokenSource
from regmix.data.sources.evalset import EvalSetSource

CHUNK_CHARS = 1 << 20  # text per task sent to a tokeniser process
CHUNK_DOCS = 1024


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


def tokenize(
    source,
    cfg: DataConfig,
    tokenizer_json: str,
    dtype: np.dtype,
    root: Path,
    bad: BadRecords,
    workers: int | None,
    backend: str | None = None,
    ray_address: str | None = None,
    seed: int = 0,
    eval_sets: Sequence[EvalSetSource] = (),
) -> ShardWriter:
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
def encoders(
    tokenizer_json: str,
    dtype: np.dtype,
    workers: int | None,
    backend: str | None = None,
    ray_address: str | None = None,
) -> Iterator[tuple[Callable[[list[str]], Future], int]]:
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


def copy_tokens(
    source: TokenSource,
    cfg: DataConfig,
    eot: int,
    dtype: np.dtype,
    root: Path,
    bad: BadRecords,
    seed: int,
    eval_sets: Sequence[EvalSetSource] = (),
    encoder: tok.Encoder | None = None,
) -> ShardWriter:
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
