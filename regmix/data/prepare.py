"""Source -> tokeniser -> token shards, and the per-domain table (results/domains.json).

Two streaming passes over the source: the first trains the BPE on up to `train_chars`
characters of train text (domains interleave, so every domain is in it), the second
tokenises everything (in local worker processes, or as Ray tasks on a cluster with
REGMIX_BACKEND=ray: regmix.data.encoding) and appends each document to its domain's shard,
in order (regmix.data.shard_writer).
Pre-tokenised sources (megatron, numpy) skip both: their documents' ids, checked against
the user's tokenizer, are copied from memory maps into the same shards.
All shards are written into a staging folder that replaces the tokens folder only when
every check has passed: a failed or killed run leaves the previous output untouched.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from regmix.config import DataConfig
from regmix.data import tokenizer as tok
from regmix.data.encoding import copy_tokens, tokenize
from regmix.data.overlap import WARN_SHARE, overlap_share, train_ngrams
from regmix.data.selection import open_source, train_texts
from regmix.data.shard_writer import ShardWriter, check_splits
from regmix.data.shards import SPLITS, TOKENIZER_FILE, TokenMeta, dtype_for, open_tokens, task_path, write_meta
from regmix.data.sources import BadRecords, TokenSource, slug
from regmix.data.sources.evalset import EvalSetSource, check_eval_set
from regmix.data.tasks import read_task, split_examples, write_task
from regmix.progress import say
from regmix.target import eval_set_specs


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


def prepare(
    cfg: DataConfig,
    seed: int,
    tokens_dir: str | Path,
    cache: str | Path | None = None,
    workers: int | None = 1,
    backend: str | None = None,
    ray_address: str | None = None,
    eval_sets: Mapping[str, Any] | None = None,
    tasks: Mapping[str, str] | None = None,
) -> dict:
    """Build `tokens_dir` (shards, tokenizer.json, meta.json, tasks/) and return the sets table.

    `eval_sets` and `tasks` are params' sections of the same names (regmix.data.sources.evalset,
    regmix.data.tasks). Text is tokenised in `workers` local processes or, with `backend` "ray"
    (default: the REGMIX_BACKEND of the proxies), as Ray tasks on the cluster at `ray_address`
    (see `regmix.data.encoding.encoders`); the shards depend on none of it."""
    source = open_source(cfg, seed, cache)
    specs = eval_set_specs(eval_sets, getattr(source, "domains", None))
    for spec in specs:  # bad files fail before any compute
        check_eval_set(spec)
    task_sets = {name: split_examples(read_task(path, name)) for name, path in (tasks or {}).items()}
    sets = [EvalSetSource(spec) for spec in specs]
    tokens_dir = Path(tokens_dir)
    with staging(tokens_dir) as stage:
        tokenizer = tokenizer_for(source, cfg)
        eot, vocab = tok.eot_id(tokenizer), tok.vocab_size(tokenizer)
        tokenizer.save(str(stage / TOKENIZER_FILE))
        dtype = dtype_for(vocab)
        bad = BadRecords(cfg.skip_bad_records)
        if isinstance(source, TokenSource):
            source.use_vocabulary(eot, vocab)
            writer = copy_tokens(
                source, cfg, eot, dtype, stage, bad, seed, sets, tok.Encoder(tokenizer.to_str(), dtype.name)
            )
        else:
            writer = tokenize(
                source, cfg, tokenizer.to_str(), dtype, stage, bad, workers, backend, ray_address, seed, sets
            )
        if bad.per_file:
            print(bad.summary())
        held_out = sorted({slug(d) for d in cfg.eval_only}) + [s.name for s in specs]
        domains = sorted({d for _, d in writer.docs} - set(held_out))
        check_splits(writer, domains, held_out)
        for name, parts in task_sets.items():
            for split, examples in parts.items():
                write_task(task_path(stage, name, split), examples)
        write_meta(
            stage,
            TokenMeta(
                vocab_size=vocab,
                eot_id=eot,
                dtype=dtype.name,
                domains=domains,
                held_out=held_out,
                tasks=list(task_sets),
            ),
        )
    describe = {s.spec.name: s.describe() for s in sets}
    return sets_table(writer, tokens_dir, domains, held_out, lambda d: describe.get(d) or source.describe(d), bad)


def tokenizer_for(source, cfg: DataConfig):
    """The run's tokenizer: the user's (`data.tokenizer.path`), else a BPE trained on the source's train text."""
    if cfg.tokenizer.path:
        return tok.load_tokenizer(cfg.tokenizer.path)
    return tok.train_bpe(train_texts(source, cfg), cfg.tokenizer.vocab_size)


def sets_table(
    writer: ShardWriter,
    tokens_dir: Path,
    domains: list[str],
    held_out: list[str],
    describe: Callable[[str], str],
    bad: BadRecords,
) -> dict:
    """results/domains.json: per set its role, documents and tokens per split, its source, and the
    share of its test 13-grams found in train (warned above `WARN_SHARE`)."""
    train = train_ngrams(open_tokens(tokens_dir, "train", d) for d in domains)
    table = {}
    for d in [*domains, *held_out]:
        entry: dict[str, Any] = {
            "role": "train" if d in domains else "held_out",
            "documents": sum(writer.docs[(s, d)] for s in SPLITS),
        }
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
            say(
                f"warning: {entry['test_13gram_in_train']:.1%} of {d!r}'s test 13-grams occur in the train "
                f"shards (above {WARN_SHARE:.0%}): its test scores flatter every mixture; deduplicate the data"
            )
        table[d] = entry
    return table
