"""Downstream multiple-choice tasks (lm-eval style) read from local jsonl files, and their scores.

Owns the task file format (one JSON object a line: `context`, `choices`, `gold`), the split of a
task's examples between selection (valid: what the proxies are ranked on) and verdict (test: what
the large runs are judged on), the lm-eval-style tokenisation of each choice in its context, and
two scores per model:

- bpb: the gold answers' negative log-likelihood in bits per byte; smooth and low-noise even when
  small models are near chance, so it ranks proxies where accuracy cannot.
- accuracy: share of examples whose gold choice has the highest log-likelihood per byte (lm-eval's
  acc_norm).

`build_continuation_task` makes an offline HellaSwag-like task from held-out documents.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from regmix.errors import UserError
from regmix.files import write_text


@dataclass(frozen=True)
class TaskExample:
    context: str
    choices: tuple[str, ...]
    gold: int  # index into choices


@dataclass(frozen=True)
class EncodedExample:
    context: list[int]
    choices: list[list[int]]
    choice_bytes: list[int]  # UTF-8 length of each choice: the per-byte normaliser
    gold: int


# ------------------------------------------------------------------------- files
def read_task(path: str | Path, name: str) -> list[TaskExample]:
    """A task's examples from its jsonl file; any malformed line is refused with its number."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"tasks.{name}: {path} not found")
    examples = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                examples.append(_parse(line, f"tasks.{name}: {path}:{n}"))
    if not examples:
        raise UserError(f"tasks.{name}: {path} has no examples")
    return examples


def _parse(line: str, where: str) -> TaskExample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    context, choices, gold = (record.get(k) for k in ("context", "choices", "gold"))
    if not isinstance(context, str):
        raise UserError(f"{where}: `context` must be a string")
    if not isinstance(choices, list) or not all(isinstance(c, str) and c for c in choices):
        raise UserError(f"{where}: `choices` must be a list of non-empty strings")
    if len(choices) < 2:
        raise UserError(f"{where}: `choices` needs at least 2 entries, got {len(choices)}")
    # bool is an int to Python, never a meant index
    if not isinstance(gold, int) or isinstance(gold, bool):
        raise UserError(f"{where}: `gold` must be an integer index into `choices`")
    if not 0 <= gold < len(choices):
        raise UserError(f"{where}: `gold` {gold} is out of range for {len(choices)} choices")
    return TaskExample(context, tuple(choices), gold)


def write_task(path: str | Path, examples: Sequence[TaskExample]) -> None:
    """jsonl, one example a line; atomic, so a killed run never leaves half a task file."""
    lines = (
        json.dumps({"context": e.context, "choices": list(e.choices), "gold": e.gold}, ensure_ascii=False) + "\n"
        for e in examples
    )
    write_text(path, "".join(lines))


def split_examples(examples: Sequence[TaskExample]) -> dict[str, list[TaskExample]]:
    """Alternate examples: selection reads valid, the verdict reads test, none is in both."""
    if len(examples) < 2:
        raise UserError(f"a task needs at least 2 examples to split into valid and test, got {len(examples)}")
    return {"valid": list(examples[0::2]), "test": list(examples[1::2])}


# ------------------------------------------------------------------ tokenisation
def encode_examples(examples: Sequence[TaskExample], tokenizer: Tokenizer, context_len: int) -> list[EncodedExample]:
    """Each choice tokenised in its context (as lm-eval does), cut to fit `context_len` inputs."""

    def encode(text: str) -> list[int]:
        # As prepare tokenised the data: no BOS or other special tokens a tokenizer may add.
        return tokenizer.encode(text, add_special_tokens=False).ids

    out = []
    for i, e in enumerate(examples):
        ctx = encode(e.context)
        if not ctx:
            raise UserError(f"example {i}: its context encodes to no tokens; the first choice token needs one")
        choices = []
        for choice in e.choices:
            joint = encode(e.context + choice)
            # A merge across the join changes the context's tokens: then the choice alone.
            ids = joint[len(ctx) :] if joint[: len(ctx)] == ctx else []
            ids = (ids or encode(choice))[:context_len]
            if not ids:
                raise UserError(f"example {i}: choice {choice!r} encodes to no tokens")
            choices.append(ids)
        # The last choice token is never an input: context + choice may be context_len + 1 long.
        keep = context_len + 1 - max(map(len, choices))
        out.append(EncodedExample(ctx[-keep:], choices, [max(1, len(c.encode("utf-8"))) for c in e.choices], e.gold))
    return out


# ----------------------------------------------------------------------- scoring
def choice_loglik(model: torch.nn.Module, seqs: list[tuple[list[int], list[int]]], batch_size: int) -> list[float]:
    """Sum of log p(choice tokens | context) for each (context, choice), in float32."""
    device = next(model.parameters()).device
    out: list[float] = []
    for b in range(0, len(seqs), batch_size):
        batch = seqs[b : b + batch_size]
        full = [ctx + ch for ctx, ch in batch]
        width = max(map(len, full)) - 1
        # Right padding: a causal model's earlier positions never see it.
        x = torch.zeros(len(batch), width + 1, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.bool)
        for r, ((ctx, ch), s) in enumerate(zip(batch, full)):
            x[r, : len(s)] = torch.tensor(s)
            mask[r, len(ctx) - 1 : len(s) - 1] = True  # the positions that predict the choice
        x, mask = x.to(device), mask.to(device)
        token_logp = torch.zeros(mask.shape, device=device)
        token_logp[mask] = answer_logp(model, x[:, :-1], mask, x[:, 1:][mask])
        out += token_logp.sum(-1).tolist()
    return out


def answer_logp(
    model: torch.nn.Module, inputs: torch.Tensor, where: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log p(target) at the positions `where` of `inputs` (float32). The output head and its
    softmax run at those positions alone: an answer is a few tokens of a long passage, and the
    head over the whole vocabulary is about half a small model's compute per position."""
    logits = model.lm_head(model.hidden_states(inputs)[where])
    return F.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def score_task(model: torch.nn.Module, examples: list[EncodedExample], batch_size: int) -> dict[str, float]:
    """Gold bits per byte (lower is better), acc_norm accuracy and the example count."""
    if not examples:
        raise ValueError("score_task: no examples to score")
    seqs = [(e.context, ch) for e in examples for ch in e.choices]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ll = choice_loglik(model, seqs, batch_size)
    finally:
        model.train(training)
    nll = n_bytes = correct = 0.0
    start = 0
    for e in examples:
        scores = ll[start : start + len(e.choices)]
        start += len(e.choices)
        nll -= scores[e.gold]
        n_bytes += e.choice_bytes[e.gold]
        per_byte = [s / b for s, b in zip(scores, e.choice_bytes)]
        correct += int(np.argmax(per_byte)) == e.gold
    return {"bpb": nll / (math.log(2) * n_bytes), "accuracy": correct / len(examples), "examples": len(examples)}


# ------------------------------------------------------------ a built-in task
def _cut(text: str, rng: np.random.Generator, context_chars: int, ending_chars: int) -> tuple[str, str] | None:
    """(context, true ending) at a random word boundary of `text`, or None if this draw fails.

    The ending keeps its leading space so that context + ending is the text as written (BPE
    tokenisers attach the space to the next word).
    """
    pos = text.find(" ", int(rng.integers(context_chars, len(text) - ending_chars)))
    if pos < 0 or pos + ending_chars >= len(text):
        return None
    end = text.rfind(" ", pos + 1, pos + ending_chars + 1)  # the last whole word that fits
    start = pos - context_chars
    if start > 0 and text[start - 1] != " ":  # begin at a word, not inside one
        start = text.find(" ", start, pos) + 1
        if start == 0:
            return None
    if end < 0:
        return None
    return text[start:pos], text[pos:end]


def build_continuation_task(
    documents: Mapping[str, Sequence[str]],
    n_examples: int,
    n_choices: int,
    seed: int,
    context_chars: int = 400,
    ending_chars: int = 120,
) -> list[TaskExample]:
    """A HellaSwag-like task from held-out text, `n_examples` long when the documents allow.

    Sources take turns; each example is a passage of a random document long enough and its true
    ending, with `n_choices - 1` endings of the same length class (cut the same way, to the same
    character budget) from other documents of the same source, as HellaSwag's distractors share
    the passage's topic (endings from another source would be told apart by their domain alone);
    from any source when the passage's has no other document. The gold position is random.
    """
    if n_choices < 2:
        raise UserError(f"continuation task: n_choices must be at least 2, got {n_choices}")
    rng = np.random.default_rng(seed)
    # One line each: whitespace runs become one space.
    texts = {(s, i): " ".join(d.split()) for s, docs in documents.items() for i, d in enumerate(docs)}
    pool = [k for k, t in texts.items() if len(t) > context_chars + ending_chars + 1]
    by_source: dict[str, list[tuple[str, int]]] = {}
    for k in pool:
        by_source.setdefault(k[0], []).append(k)
    sources = list(by_source)
    out: list[TaskExample] = []
    if len({texts[k] for k in pool}) < 2:  # distractors need another document
        return out
    for _ in range(20 * n_examples):
        if len(out) == n_examples:
            break
        own = by_source[sources[len(out) % len(sources)]]
        doc = own[int(rng.integers(len(own)))]
        drawn = _cut(texts[doc], rng, context_chars, ending_chars)
        if drawn is None:
            continue
        context, ending = drawn
        endings: list[str] = []
        others = [k for k in own if k != doc] or pool
        for _ in range(20 * n_choices):
            if len(endings) == n_choices - 1:
                break
            other = others[int(rng.integers(len(others)))]
            cut = _cut(texts[other], rng, context_chars, ending_chars) if other != doc else None
            if cut is not None and cut[1] != ending and cut[1] not in endings:
                endings.append(cut[1])
        if len(endings) < n_choices - 1:
            continue
        gold = int(rng.integers(n_choices))
        endings.insert(gold, ending)
        out.append(TaskExample(context, tuple(endings), gold))
    return out
