"""Scoring the trained large models on the test split (never read by selection): every set's
loss and bits per byte, each task's gold likelihood and accuracy (regmix.train.scores), the target,
built-in downstream tasks and lm-eval.

Two zero-shot tasks are built offline from each domain's test tokens, the same examples for
every model (they depend only on the data, the context and the seed):

- last_word (LAMBADA-style): a passage ending just before a word; correct when greedy
  decoding reproduces every token of that word.
- continuation (HellaSwag-style): a passage and `n_choices` endings of equal token length, the
  true one and others taken from other documents; the model picks the ending with the
  highest log-likelihood per byte (lm-eval's acc_norm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tokenizers import Tokenizer

from regmix.code import code_digest
from regmix.config import PRECISIONS, EvaluateConfig
from regmix.data.shards import TOKENIZER_FILE, data_signature, open_tokens, read_meta, task_path
from regmix.data.tasks import answer_logp
from regmix.errors import UserError
from regmix.files import file_digest, read_json, write_json
from regmix.progress import progress, say
from regmix.target import Target
from regmix.train import store as machine_store
from regmix.train.hf_export import load_hf
from regmix.train.large import HF_DIR
from regmix.train.scores import ScoringData, score_model, scoring_data
from regmix.train.training import autocast, config_hash, native_bf16

TASKS = ("last_word", "continuation")
SCORES_KIND = "scores"  # in the machine store
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


def run_lm_eval(
    model_dir: str | Path, tasks: list[str], include_path: str | None, batch_size: int, seed: int
) -> dict[str, dict[str, float]]:
    """lm-eval-harness on an exported model (`--model hf`): numeric metrics per task."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    if include_path is not None and not Path(include_path).is_dir():
        raise UserError(f"evaluate.lm_eval_include_path: {include_path} is not a folder")
    manager = TaskManager(include_path=include_path)
    try:
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": "float32"},
            tasks=tasks,
            task_manager=manager,
            batch_size=batch_size,
            device="cuda" if torch.cuda.is_available() else "cpu",
            log_samples=False,
            random_seed=seed,
            numpy_random_seed=seed,
            torch_random_seed=seed,
            fewshot_random_seed=seed,
        )
    except (KeyError, ValueError) as e:  # unknown task names surface as these
        raise UserError(f"evaluate.lm_eval_tasks: {e}") from None
    return {
        task: {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for task, metrics in results["results"].items()
    }


def score_key(model_dir: Path, tokens_dir: str | Path, cfg: EvaluateConfig, seed: int, device: torch.device) -> str:
    """What a run's scores depend on: the model's files, the test data, tasks and tokenizer, the
    evaluate settings, the seed (the tasks' examples), the device and the scoring code."""
    model = {str(f.relative_to(model_dir)): file_digest(f) for f in sorted(model_dir.rglob("*")) if f.is_file()}
    meta = read_meta(tokens_dir)
    tasks = {t: file_digest(task_path(tokens_dir, t, "test")) for t in meta.tasks}
    return config_hash(
        model=model,
        data=data_signature(tokens_dir, meta.scored, "test"),
        tasks=tasks,
        cfg=cfg,
        seed=seed,
        device=device.type,
        precision=scoring_precision(cfg, device),
        torch=torch.__version__,
        lm_eval=_version("lm_eval") if cfg.lm_eval_tasks else None,
        code=code_digest(__name__),
    )


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def score_run(
    run_dir: Path,
    tokens_dir: str | Path,
    cfg: EvaluateConfig,
    seed: int,
    device: torch.device,
    inputs: dict[int, tuple[ScoringData, TaskSet]],
) -> dict[str, Any]:
    """One run's test scores (`inputs`: scoring data and built-in tasks per context, built once
    and shared by the runs): `scores` (regmix.train.scores' flat record), `domain_loss` and `bpb` per
    set, and `downstream` accuracies."""
    model = load_hf(run_dir / HF_DIR).to(device)  # one at a time: 1B models are 4 GB each
    context = model.cfg.context
    if context not in inputs:
        inputs[context] = (
            scoring_data(str(tokens_dir), "test", context, cfg.windows_per_domain),
            build_tasks(tokens_dir, cfg, context, seed),
        )
    data, tasks = inputs[context]
    precision = scoring_precision(cfg, device)
    flat = score_model(model, data, cfg.batch_size, precision)
    with autocast(precision, device):
        built_in = downstream(model, tasks, cfg.batch_size)
    scores = {
        "scores": flat,
        "domain_loss": {s: flat[f"loss.{s}"] for s in data.windows},
        "bpb": {s: flat[f"bpb.{s}"] for s in data.windows},
        "downstream": built_in,
    }
    for name in data.tasks:
        scores["downstream"][f"task:{name}"] = {
            "bpb": flat[f"task.{name}"],
            "accuracy": flat[f"acc.{name}"],
            "examples": len(data.tasks[name]),
        }
    if cfg.lm_eval_tasks:
        scores["downstream"]["lm_eval"] = run_lm_eval(
            run_dir / HF_DIR, cfg.lm_eval_tasks, cfg.lm_eval_include_path, cfg.batch_size, seed
        )
    return scores


def scoring_precision(cfg: EvaluateConfig, device: torch.device) -> str:
    """`evaluate.precision` made concrete for `device` (`auto`: bf16 where native, else fp32)."""
    if cfg.precision not in PRECISIONS:
        raise UserError(f"evaluate.precision: {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")
    return cfg.precision if cfg.precision != "auto" else ("bf16" if native_bf16(device) else "fp32")


def evaluate_runs(
    run_dirs: Mapping[str, Path],
    tokens_dir: str | Path,
    cfg: EvaluateConfig,
    target: Target,
    seed: int,
    store: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Score every trained run (data/large/<name>/hf/) on the same windows and tasks.

    With a `store`, each run's scores are kept there (and in the machine store, regmix.train.store) under
    its `score_key` and a run scored before is read back, not scored again: a change to the report,
    the target or the compared mixtures costs no evaluation. Returns {name: {"target_loss", "domain_loss", "downstream"}}.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    keys = {n: score_key(Path(d) / HF_DIR, tokens_dir, cfg, seed, device) for n, d in run_dirs.items()} if store else {}
    stored = {
        n: read_json(Path(store) / f"{k}.json")
        for n, k in keys.items()
        if machine_store.restore(Path(store) / f"{k}.json", SCORES_KIND)
    }
    todo = [n for n in run_dirs if n not in stored]
    if stored:
        say(f"evaluate: {len(stored)} of {len(run_dirs)} runs scored before (in {store}), {len(todo)} to score")
    inputs: dict[int, tuple[ScoringData, TaskSet]] = {}
    scores = dict(stored)
    for name in progress(todo, total=len(todo), desc="evaluate", unit="run") if todo else []:
        scores[name] = score_run(Path(run_dirs[name]), tokens_dir, cfg, seed, device, inputs)
        if store:
            write_json(Path(store) / f"{keys[name]}.json", scores[name])
            machine_store.keep(Path(store) / f"{keys[name]}.json", SCORES_KIND)
    # the rule the regression was fitted to
    targets = target.by_name({n: s["scores"] for n, s in scores.items()}, "the large runs' test scores")
    return {n: {"target_loss": targets[n], **scores[n]} for n in run_dirs}
