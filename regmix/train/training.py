"""What the proxies and the large model share: mixture batches, the training loop,
per-domain evaluation, and the set-up around them (vocabulary, token counts, run identity).

Randomness is stateless per step: the batch of step `s` is drawn from a generator seeded by
(seed, s, rank), so a run resumed from a checkpoint at step `s` sees exactly the batches an
uninterrupted run would, and data-parallel ranks never draw the same windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from regmix.config import PRECISIONS, ModelConfig, OptimConfig
from regmix.data.shards import TokenMeta, open_tokens
from regmix.errors import UserError

# Fields that change how fast a run goes, never its result: left out of `config_hash`, so
# turning them on keeps cached proxies and resumable checkpoints valid.
SPEED_ONLY: dict[type, tuple[str, ...]] = {OptimConfig: ("compile",)}


# ------------------------------------------------------------------------- set-up
def resolve_vocab(model: ModelConfig, meta: TokenMeta, key: str) -> ModelConfig:
    """`model` with the tokenizer's vocabulary size when its own is null.

    `key` is where `model` sits in params (`proxy.model`, `large.model`), for the error.
    """
    vocab = model.vocab_size
    if vocab is None:
        vocab = meta.vocab_size
    elif vocab < meta.vocab_size:
        raise UserError(
            f"{key}.vocab_size {vocab} is smaller than the tokenizer's {meta.vocab_size} (meta.json of the token data)"
        )
    return dataclasses.replace(model, vocab_size=vocab)


def config_hash(**parts: Any) -> str:
    """sha256 (hex) of `parts` as sorted JSON, dataclasses as dicts without `SPEED_ONLY` fields.

    Cached proxies and checkpoints are found by this hash: any change to the blob (a key, a
    field, the JSON layout) makes every stored result stale.
    """
    blob = json.dumps({name: _identity(value) for name, value in parts.items()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _identity(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        skip = SPEED_ONLY.get(type(value), ())
        return {f.name: _identity(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    return value


# ----------------------------------------------------------------------- training


class MixtureSampler:
    """Sequences of `context + 1` tokens; each from one domain drawn by mixture weight."""

    def __init__(self, tokens_dir: str | Path, mixture: Mapping[str, float], context: int, seed: int, rank: int = 0):
        active = {d: w for d, w in mixture.items() if w > 0}
        if not active:
            raise UserError("the mixture gives every domain zero weight")
        self.domains = list(active)
        weights = np.array([active[d] for d in self.domains], dtype=np.float64)
        self.probs = weights / weights.sum()
        self.streams = [open_tokens(tokens_dir, "train", d) for d in self.domains]
        for domain, stream in zip(self.domains, self.streams):
            if len(stream) <= context + 1:
                raise UserError(
                    f"domain {domain!r} has {len(stream)} train tokens, fewer than one window of context {context} + 1"
                )
        self.context = context
        self.seed = seed
        self.rank = rank

    def _draw_domains(self, step: int, rank: int, batch_size: int) -> tuple[np.random.Generator, np.ndarray]:
        """The step's generator and, drawn first from it, the domain of each sequence."""
        rng = np.random.default_rng([self.seed, step, rank])
        return rng, rng.choice(len(self.domains), size=batch_size, p=self.probs)

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng, which = self._draw_domains(step, self.rank, batch_size)
        rows = np.empty((batch_size, self.context + 1), dtype=np.int64)
        for i, d in enumerate(which):
            stream = self.streams[d]
            start = rng.integers(0, len(stream) - self.context - 1)
            rows[i] = stream[start : start + self.context + 1]
        data = torch.from_numpy(rows)
        return data[:, :-1], data[:, 1:]

    def sequences_drawn(self, steps: int, batch_size: int, world_size: int = 1) -> dict[str, int]:
        """Sequences each domain contributed to steps 0..steps-1 over all ranks: the exact
        count, replayed from the per-step seeds without reading any tokens."""
        counts = np.zeros(len(self.domains), dtype=np.int64)
        for step in range(steps):
            for rank in range(world_size):
                counts += np.bincount(self._draw_domains(step, rank, batch_size)[1], minlength=len(self.domains))
        return dict(zip(self.domains, counts.tolist()))


def eval_windows(
    tokens_dir: str | Path, domains: list[str], context: int, windows_per_domain: int, split: str = "valid"
) -> dict[str, torch.Tensor]:
    """Fixed held-out windows per set: evenly spaced over its `split` stream (valid or test).

    They depend only on the data and the context, so every model is scored on the same tokens.
    """
    windows = {}
    for domain in domains:
        stream = open_tokens(tokens_dir, split, domain)
        span = len(stream) - context - 1
        if span < 0:
            raise UserError(
                f"set {domain!r} has {len(stream)} {split} tokens, fewer than one window of "
                f"context {context} + 1: more held-out documents (data.valid_fraction) or a shorter context"
            )
        n = min(windows_per_domain, span + 1)
        starts = np.linspace(0, span, n).astype(np.int64)
        windows[domain] = torch.from_numpy(
            np.stack([np.asarray(stream[s : s + context + 1], dtype=np.int64) for s in starts])
        )
    return windows


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 natively. Elsewhere (an AVX2-only CPU, say) bf16
    autocast is emulated and runs ~20x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(optim: OptimConfig, device: torch.device, key: str) -> OptimConfig:
    """`optim` with precision `auto` made concrete for `device`: bf16 autocast where it is
    native (fast, the same numbers on every rerun on one machine), exact fp32 elsewhere.
    Cached results are keyed by the concrete precision, never by `auto`."""
    if optim.precision not in PRECISIONS:
        raise UserError(f"{key}.optim.precision: {optim.precision!r}; choose one of {', '.join(PRECISIONS)}")
    if optim.precision != "auto":
        return optim
    return dataclasses.replace(optim, precision="bf16" if native_bf16(device) else "fp32")


def autocast(precision: str, device: torch.device):
    """bf16 autocast when asked for; exact fp32 otherwise (`precision` already resolved)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise UserError(f"precision must be fp32 or bf16 here, got {precision!r}")
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module, windows: Mapping[str, torch.Tensor], batch_size: int, precision: str = "fp32"
) -> dict[str, float]:
    """Mean next-token loss of `model` on each domain's fixed windows."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = {}
    for domain, data in windows.items():
        total, count = 0.0, 0
        for i in range(0, len(data), batch_size):
            chunk = data[i : i + batch_size].to(device)
            with autocast(precision, device):
                loss = model(chunk[:, :-1], chunk[:, 1:])
            total += loss.item() * len(chunk)
            count += len(chunk)
        losses[domain] = total / count
    model.train(was_training)
    return losses


def lr_at(step: int, cfg: OptimConfig) -> float:
    """Linear warmup, then constant or cosine decay to `min_lr` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))
    raise UserError(f"optim.schedule must be constant or cosine, got {cfg.schedule!r}")


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not norms), as in LLaMA/TinyLlama."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


StepCallback = Callable[[int, float, float], None]


def train_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: MixtureSampler,
    cfg: OptimConfig,
    start: int = 0,
    stop: int | None = None,
    rank_batch_size: int | None = None,
    on_step: StepCallback | None = None,
) -> None:
    """Run optimiser steps `start..stop-1`; `on_step(step, loss, lr)` after each.

    `rank_batch_size` (this process's share of the batch under data parallelism) defaults to
    the global batch. With `cfg.micro_batch_size` the share is split into micro-batches whose
    gradients accumulate, so a large batch fits in memory: the update is the same.
    """
    device = next(model.parameters()).device
    stop = cfg.steps if stop is None else stop
    batch_size = rank_batch_size or cfg.batch_size
    micro = min(cfg.micro_batch_size or batch_size, batch_size)
    if batch_size % micro:
        raise UserError(
            f"optim.micro_batch_size {micro} does not divide the per-process batch of {batch_size} sequences"
        )
    n_micro = batch_size // micro
    # Under DDP, gradients are all-reduced only on the last micro-batch of a step.
    no_sync = getattr(model, "no_sync", contextlib.nullcontext)
    model.train()
    for step in range(start, stop):
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = sampler.batch(step, batch_size)
        optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=device)
        for i in range(n_micro):
            chunk = slice(i * micro, (i + 1) * micro)
            with no_sync() if i < n_micro - 1 else contextlib.nullcontext():
                with autocast(cfg.precision, device):
                    loss = model(x[chunk].to(device), y[chunk].to(device)) / n_micro
                loss.backward()
            step_loss += loss.detach()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if on_step is not None:
            on_step(step, step_loss.item(), lr)
