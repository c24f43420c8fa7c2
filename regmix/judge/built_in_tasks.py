"""The built-in downstream tasks: two zero-shot tasks built offline from each domain's test tokens,
the same examples for every model (they depend only on the data, the context and the seed), and
their accuracies (regmix.judge.evaluation scores every run on them):

- last_word (LAMBADA-style): a passage ending just before a word; correct when greedy
  decoding reproduces every token of that word.
- continuation (HellaSwag-style): a passage and `n_choices` endings of equal token length, the
  true one and others taken from other documents; the model picks the ending with the
  highest log-likelihood per byte (lm-eval's acc_norm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from regmix.config import EvaluateConfig
from regmix.data.shards import TOKENIZER_FILE, open_tokens, read_meta
from regmix.data.tasks import answer_logp
from regmix.errors import UserError

TASKS = ("last_word", "continuation")
# A word preceded by one space and followed by something that is not part of a word, so the
# passage cut never ends inside a word.
WORD = re.compile(r" ([A-Za-z]{2,})(?=[^A-Za-z0-9_'-])")


# ---------------------------------------------------------------------- examples
@dataclass(frozen=True)
class LastWord:
    context: list[int]
    word: list[int]


@dataclass(frozen=True)
class Choice:
    context: list[int]
    endings: list[list[int]]
    ending_bytes: list[int]  # byte length of each decoded ending: the length normaliser
    label: int


def sample_spans(
    stream: np.ndarray, eot: int, length: int, n: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """`n` (document index, tokens) spans of `length` tokens, each inside one document.

    A position is drawn uniformly over all valid starts, so long documents give more spans.
    """
    ends = np.flatnonzero(np.asarray(stream) == eot)
    starts = np.concatenate([[0], ends + 1])
    ends = np.concatenate([ends, [len(stream)]])
    room = np.maximum(ends - starts - length + 1, 0)
    if room.sum() == 0:
        return []
    docs = rng.choice(len(room), size=n, p=room / room.sum())
    offsets = rng.integers(0, room[docs])
    return [
        (int(d), np.asarray(stream[starts[d] + o : starts[d] + o + length], dtype=np.int64))
        for d, o in zip(docs, offsets)
    ]


def last_word_examples(spans: list[tuple[int, np.ndarray]], tokenizer: Tokenizer, context: int) -> list[LastWord]:
    """Cut each decoded passage before its last whole word (in the passage's second half)."""
    out = []
    for _, tokens in spans:
        text = tokenizer.decode(tokens.tolist())
        found = [m for m in WORD.finditer(text) if m.start() >= len(text) // 2]
        if not found:
            continue
        prefix, word = text[: found[-1].start()], found[-1].group(0)
        # As prepare tokenised the data: no BOS or other special tokens a tokenizer may add.
        ctx, full, alone = (tokenizer.encode(t, add_special_tokens=False).ids for t in (prefix, prefix + word, word))
        # Tokenise the word in its context when the prefix's tokens survive the join.
        word_ids = full[len(ctx) :] if full[: len(ctx)] == ctx else alone
        ctx = ctx[-(context - len(word_ids)) :]
        if ctx and word_ids:
            out.append(LastWord(ctx, word_ids))
    return out


def continuation_examples(
    spans: list[tuple[int, np.ndarray]], split: int, n_choices: int, tokenizer: Tokenizer, rng: np.random.Generator
) -> list[Choice]:
    """Passage = span[:split]; endings = its own tail and tails of spans from other documents."""
    out = []
    tails = [tokens[split:].tolist() for _, tokens in spans]
    docs = np.array([d for d, _ in spans])
    for i, (doc, tokens) in enumerate(spans):
        others = np.flatnonzero(docs != doc)
        if len(others) < n_choices - 1:  # a domain of few documents: other places of any
            others = np.delete(np.arange(len(spans)), i)
        if len(others) < n_choices - 1:
            break
        picks = rng.choice(others, size=n_choices - 1, replace=False)
        label = int(rng.integers(n_choices))
        endings = [tails[j] for j in picks]
        endings.insert(label, tails[i])
        out.append(
            Choice(
                tokens[:split].tolist(), endings, [max(1, len(tokenizer.decode(e).encode())) for e in endings], label
            )
        )
    return out


@dataclass
class TaskSet:
    """Every domain's examples for both tasks, built once and scored on each model."""

    last_word: dict[str, list[LastWord]]
    continuation: dict[str, list[Choice]]
    n_choices: int


def build_tasks(tokens_dir: str | Path, cfg: EvaluateConfig, context: int, seed: int) -> TaskSet:
    """Deterministic examples per domain (seeded by `seed` and the domain's position)."""
    unknown = sorted(set(cfg.tasks) - set(TASKS))
    if unknown:
        raise UserError(f"evaluate.tasks: unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    if cfg.n_choices < 2:
        raise UserError(f"evaluate.n_choices must be at least 2, got {cfg.n_choices}")
    meta = read_meta(tokens_dir)
    tokenizer = Tokenizer.from_file(str(Path(tokens_dir) / TOKENIZER_FILE))
    ending = min(cfg.continuation_tokens, context // 2)
    passage = min(cfg.passage_tokens, context - ending)
    tasks = TaskSet({}, {}, cfg.n_choices)
    for i, domain in enumerate(meta.domains):
        stream = open_tokens(tokens_dir, "test", domain)
        if "last_word" in cfg.tasks:
            rng = np.random.default_rng([seed, i, 0])
            # Twice the passages wanted: some have no usable last word (code, numbers).
            spans = sample_spans(stream, meta.eot_id, min(context, passage + 8), 2 * cfg.n_examples, rng)
            tasks.last_word[domain] = last_word_examples(spans, tokenizer, context)[: cfg.n_examples]
        if "continuation" in cfg.tasks:
            rng = np.random.default_rng([seed, i, 1])
            spans = sample_spans(stream, meta.eot_id, passage + ending, cfg.n_examples, rng)
            tasks.continuation[domain] = continuation_examples(spans, passage, cfg.n_choices, tokenizer, rng)
    return tasks


# ------------------------------------------------------------------------ scoring
@torch.no_grad()
def last_word_accuracy(model: torch.nn.Module, examples: list[LastWord], batch_size: int) -> float:
    """Share of examples whose whole last word greedy decoding gets right."""
    device = next(model.parameters()).device
    correct = 0
    for b in range(0, len(examples), batch_size):
        batch = examples[b : b + batch_size]
        seqs = [e.context + e.word[:-1] for e in batch]
        # Right padding: a causal model's earlier positions never see it.
        x = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        where = torch.zeros(x.shape, dtype=torch.bool)
        for r, (s, e) in enumerate(zip(seqs, batch)):
            x[r, : len(s)] = torch.tensor(s)
            where[r, len(e.context) - 1 : len(e.context) - 1 + len(e.word)] = (
                True  # the positions that predict the word
            )
        # the head at the word's positions alone (row-major: each example's positions in order)
        pred = model.lm_head(model.hidden_states(x.to(device))[where.to(device)]).argmax(-1).cpu().tolist()
        start = 0
        for e in batch:
            correct += pred[start : start + len(e.word)] == e.word
            start += len(e.word)
    return correct / max(1, len(examples))


@torch.no_grad()
def continuation_accuracy(model: torch.nn.Module, examples: list[Choice], batch_size: int) -> float:
    """Share of examples whose true ending has the highest log-likelihood per byte."""
    device = next(model.parameters()).device
    correct = 0
    per_batch = max(1, batch_size // len(examples[0].endings)) if examples else 1
    for b in range(0, len(examples), per_batch):
        batch = examples[b : b + per_batch]
        x = torch.tensor([e.context + end for e in batch for end in e.endings], device=device)
        n_end = len(batch[0].endings[0])
        where = torch.zeros(x[:, :-1].shape, dtype=torch.bool, device=device)
        where[:, -n_end:] = True  # the positions that predict the ending
        token_logp = answer_logp(model, x[:, :-1], where, x[:, -n_end:].reshape(-1))
        scores = token_logp.view(len(x), n_end).sum(-1).view(len(batch), -1).cpu()
        norm = torch.tensor([e.ending_bytes for e in batch], dtype=torch.float32)
        picks = (scores / norm).argmax(-1)
        correct += sum(int(p) == e.label for p, e in zip(picks, batch))
    return correct / max(1, len(examples))


def downstream(model: torch.nn.Module, tasks: TaskSet, batch_size: int) -> dict[str, Any]:
    """Accuracy per task: per domain, and over all its examples (with the counts behind it)."""
    out: dict[str, Any] = {}
    for name, per_domain, score in (
        ("last_word", tasks.last_word, last_word_accuracy),
        ("continuation", tasks.continuation, continuation_accuracy),
    ):
        scored = {d: score(model, ex, batch_size) for d, ex in per_domain.items() if ex}
        if scored:
            examples = sum(len(ex) for ex in per_domain.values())
            correct = round(sum(acc * len(per_domain[d]) for d, acc in scored.items()))
            out[name] = {"accuracy": correct / examples, "correct": correct, "examples": examples, "domains": scored}
    if "continuation" in out:
        out["continuation"]["chance"] = 1.0 / tasks.n_choices
    return out
