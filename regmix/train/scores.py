"""Every model, scored on every set and task: one flat record of prefixed scores.

    loss.<set>   mean next-token loss on the set's fixed windows, nats per token
    bpb.<set>    the same in bits per byte of the text those tokens decode to
                 (loss x tokens / (ln 2 x bytes)): what compares across tokenizers
    task.<name>  the gold answers' negative log-likelihood, bits per byte (regmix.data.tasks)
    acc.<name>   the share of examples whose gold answer is the likeliest per byte

A set is a training domain or a held-out set (a `data.eval_only` domain, an evaluation set).
Proxies, their replicates and the verify proxies read the `valid` split; the large runs' verdict
reads `test` (regmix.judge.evaluation): the windows and task examples depend only on the data, the
split and the context, so every model of a split is scored on the same tokens.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from tokenizers import Tokenizer

from regmix.code import code_digest
from regmix.data.shards import TOKENIZER_FILE, data_signature, read_meta, task_path
from regmix.data.tasks import EncodedExample, encode_examples, read_task, score_task
from regmix.files import file_digest
from regmix.train.training import autocast, eval_windows, evaluate_loss


@dataclass(frozen=True)
class ScoringData:
    """What one split of the data scores a model on."""

    windows: dict[str, torch.Tensor]  # set -> [n, context + 1] token windows
    tokens_per_byte: dict[str, float]  # set -> predicted tokens per byte of their decoded text
    tasks: dict[str, list[EncodedExample]]  # task -> its examples of this split

    def subset(self, keys: list[str]) -> ScoringData:
        """Only the sets and tasks named by score keys (`loss.<set>`, `task.<name>`)."""
        sets = {k.split(".", 1)[1] for k in keys if k.startswith("loss.")}
        tasks = {k.split(".", 1)[1] for k in keys if k.startswith("task.")}
        return ScoringData(
            {s: w for s, w in self.windows.items() if s in sets},
            {s: r for s, r in self.tokens_per_byte.items() if s in sets},
            {t: e for t, e in self.tasks.items() if t in tasks},
        )


def bits_per_byte(loss: float, tokens_per_byte: float) -> float:
    """Nats per token -> bits per byte."""
    return loss * tokens_per_byte / math.log(2)


def window_tokens_per_byte(windows: torch.Tensor, tokenizer: Tokenizer) -> float:
    """Predicted tokens (each window's last `context`) per UTF-8 byte they decode to."""
    predicted = windows[:, 1:]
    n_bytes = sum(len(tokenizer.decode(row.tolist()).encode("utf-8")) for row in predicted)
    return predicted.numel() / max(1, n_bytes)


@functools.lru_cache(maxsize=4)
def scoring_data(tokens_dir: str, split: str, context: int, windows_per_set: int) -> ScoringData:
    """The split's windows of every scored set and its task examples (cached: every model of a
    worker shares them)."""
    meta = read_meta(tokens_dir)
    tokenizer = Tokenizer.from_file(str(Path(tokens_dir) / TOKENIZER_FILE))
    windows = eval_windows(tokens_dir, meta.scored, context, windows_per_set, split)
    tasks = {
        name: encode_examples(read_task(task_path(tokens_dir, name, split), name), tokenizer, context)
        for name in meta.tasks
    }
    return ScoringData(windows, {s: window_tokens_per_byte(w, tokenizer) for s, w in windows.items()}, tasks)


def score_model(
    model: torch.nn.Module, data: ScoringData, batch_size: int, precision: str = "fp32"
) -> dict[str, float]:
    """The model's flat score record on `data` (see the module docstring)."""
    losses = evaluate_loss(model, data.windows, batch_size, precision)
    scores = {f"loss.{s}": v for s, v in losses.items()}
    scores.update({f"bpb.{s}": bits_per_byte(v, data.tokens_per_byte[s]) for s, v in losses.items()})
    for name, examples in data.tasks.items():
        with autocast(precision, next(model.parameters()).device):
            result = score_task(model, examples, batch_size)
        scores[f"task.{name}"], scores[f"acc.{name}"] = result["bpb"], result["accuracy"]
    return scores


@functools.lru_cache(maxsize=4)
def scored_on(tokens_dir: str) -> dict[str, str]:
    """What each score key of the token data reads and how it is computed, as one digest: `loss.<set>`
    its valid shard, `task.<name>` its valid examples, each with the scoring code's (this module's
    import closure). A stored score whose digest differs was made on other data (a task file rewritten
    in place, say) or by other code (a faster head that rounds differently in bf16), and is made again
    from the stored weights: a proxy scored when it trained and one scored later read the same."""
    meta = read_meta(tokens_dir)
    shards = data_signature(tokens_dir, meta.scored, "valid")
    data = {
        **{f"loss.{s}": shards[s][1] for s in meta.scored},
        **{f"task.{t}": file_digest(task_path(tokens_dir, t, "valid")) for t in meta.tasks},
    }
    code = code_digest(__name__)[:16]
    return {k: f"{digest}+code:{code}" for k, digest in data.items()}


def missing_scores(record: Mapping[str, Any], tokens_dir: str | Path) -> list[str]:
    """The score keys of the token data that a stored proxy's record lacks, or has made on other data."""
    have = record.get("scored_on", {})
    return [k for k, digest in scored_on(str(tokens_dir)).items() if have.get(k) != digest]
