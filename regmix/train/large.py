"""The large model: one mixture trained at scale, resumable, data parallel, exported for HF.

Same model and data loader as the proxies (regmix.train.model, regmix.train.training). What this adds:
mixture names -> weights, checkpoints that survive a kill (and refuse to resume from other
params), torchrun data parallelism (NCCL on GPUs, gloo on CPU), bf16 on CUDA via the optim
config, token/epoch accounting, DVCLive curves, and the Hugging Face export.

This module is the run itself (setup -> train -> finish); its parts live beside it:
regmix.train.checkpoints (fingerprint, save, load), regmix.train.distributed (torchrun set-up) and
regmix.train.curves (DVCLive logging).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from regmix.config import LargeConfig, tokens_per_step, train_tokens
from regmix.data.shards import TokenMeta, data_signature, read_meta, shard_path
from regmix.errors import UserError
from regmix.files import write_json
from regmix.progress import Plan, Rate, amount, device_name, progress, remember_rate, remembered_rate, warmup_rate
from regmix.train.checkpoints import fingerprint, load_checkpoint, save_checkpoint
from regmix.train.curves import Curves, StepLogger
from regmix.train.distributed import Dist, init_distributed
from regmix.train.hf_export import export_hf
from regmix.train.model import LLaMA
from regmix.train.training import (
    MixtureSampler,
    autocast,
    config_hash,
    eval_windows,
    evaluate_loss,
    make_optimizer,
    resolve_precision,
    resolve_vocab,
    train_steps,
)

SLOW_HINT = (
    "this shape is sized for GPUs: a GPU machine (torchrun --nproc_per_node N for several), "
    "or a smaller large.model, fewer large.optim.steps or a smaller large.optim.batch_size"
)
CHECKPOINT_FILE = "checkpoint.pt"
RUN_FILE = "run.json"  # mixture, tokens per domain, epochs: what evaluate and report read
HF_DIR = "hf"


# ---------------------------------------------------------------------- accounting
def token_budget(
    cfg: LargeConfig, mixture: Mapping[str, float], tokens_dir: str | Path, name: str, max_epochs: float | None
) -> dict[str, dict[str, float]]:
    """Tokens each domain gets (its weight x the run's tokens) and the epochs that means.

    Warns when a domain would repeat more than `max_epochs` epochs (`sample.max_epochs`, the
    swarm's cap): RegMix caps how often a small domain is reused because repeated tokens
    stop helping.
    """
    total = train_tokens(cfg.optim, cfg.model.context)
    out = {}
    for domain, w in mixture.items():
        if w <= 0:
            continue
        available = (
            shard_path(tokens_dir, "train", domain).stat().st_size // np.dtype(read_meta(tokens_dir).dtype).itemsize
        )
        tokens = w * total
        out[domain] = {"tokens": tokens, "epochs": tokens / max(1, available)}
        if max_epochs is not None and out[domain]["epochs"] > max_epochs:
            warnings.warn(
                f"mixture {name!r}: domain {domain!r} would be repeated "
                f"{out[domain]['epochs']:.1f} epochs, more than sample.max_epochs="
                f"{max_epochs}",
                stacklevel=2,
            )
    return out


# -------------------------------------------------------------------------- train
@dataclass
class LargeRun:
    """One (possibly resumed) run, as `setup` leaves it for `train` and `finish`."""

    name: str
    mixture: dict[str, float]
    cfg: LargeConfig  # the vocabulary resolved
    ctx: Dist
    tokens_dir: Path
    out_dir: Path
    model: LLaMA
    net: torch.nn.Module  # what trains: `model`, under DDP and torch.compile when they apply
    optimizer: torch.optim.Optimizer
    sampler: MixtureSampler
    windows: dict[str, torch.Tensor]  # validation windows per domain
    rank_batch: int  # this process's share of the batch
    budget: dict[str, dict[str, float]]  # see token_budget
    fingerprint: str
    start: int  # step resumed from (0: a fresh run)
    curves: Curves | None  # rank 0 only

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_FILE

    def valid_loss(self) -> dict[str, float]:
        return evaluate_loss(self.model, self.windows, self.cfg.eval.batch_size, self.cfg.optim.precision)


def setup(
    name: str,
    mixture: Mapping[str, float],
    cfg: LargeConfig,
    seed: int,
    tokens_dir: str | Path,
    out_dir: str | Path,
    log_dir: str | Path,
    threads: int | None,
    max_epochs: float | None,
) -> LargeRun:
    """Check the params against the data and the processes, build the model, resume if a
    checkpoint with the same fingerprint is in `out_dir`, and open the curves."""
    out_dir, log_dir = Path(out_dir), Path(log_dir)
    ctx = init_distributed(threads)
    meta = read_meta(tokens_dir)
    cfg = resolve_config(cfg, meta, ctx)
    budget = token_budget(cfg, mixture, tokens_dir, name, max_epochs)
    active = [d for d, w in mixture.items() if w > 0]
    fp = fingerprint(cfg, mixture, seed, ctx.world_size, data_signature(tokens_dir, active))

    torch.manual_seed(seed)  # identical initial weights on every rank and every attempt
    model = LLaMA(cfg.model).to(ctx.device)
    optimizer = make_optimizer(model, cfg.optim)
    start = load_checkpoint(out_dir / CHECKPOINT_FILE, model, optimizer, fp)
    sampler = MixtureSampler(tokens_dir, mixture, cfg.model.context, seed, rank=ctx.rank)
    windows = eval_windows(tokens_dir, meta.domains, cfg.model.context, cfg.eval.windows_per_domain)
    if ctx.main and start < cfg.optim.steps:  # before DDP: the warm-up may run the bare model
        announce(f"train {name} (seed {seed})", cfg, ctx, model, sampler, start)

    net: torch.nn.Module = model
    if ctx.world_size > 1:  # after the resume: DDP starts every rank from rank 0's weights
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    if cfg.optim.compile:
        net = torch.compile(net)
    return LargeRun(
        name=name,
        mixture=dict(mixture),
        cfg=cfg,
        ctx=ctx,
        tokens_dir=Path(tokens_dir),
        out_dir=out_dir,
        model=model,
        net=net,
        optimizer=optimizer,
        sampler=sampler,
        windows=windows,
        rank_batch=cfg.optim.batch_size // ctx.world_size,
        budget=budget,
        fingerprint=fp,
        start=start,
        curves=Curves(log_dir, start) if ctx.main else None,
    )


def resolve_config(cfg: LargeConfig, meta: TokenMeta, ctx: Dist) -> LargeConfig:
    """`cfg` with the vocabulary of the token data and the precision of this device, its batch
    checked to split evenly over the data-parallel processes."""
    cfg = dataclasses.replace(
        cfg,
        model=resolve_vocab(cfg.model, meta, "large.model"),
        optim=resolve_precision(cfg.optim, ctx.device, "large"),
    )
    if cfg.optim.batch_size % ctx.world_size:
        raise UserError(
            f"large.optim.batch_size {cfg.optim.batch_size} is not divisible by the "
            f"{ctx.world_size} data-parallel processes"
        )
    return cfg


def rate_key(cfg: LargeConfig, ctx: Dist) -> str:
    """What decides the run's speed here: model, batch shape, precision, compile, processes, device."""
    return config_hash(
        rate="large",
        model=cfg.model,
        optim=dataclasses.asdict(cfg.optim),
        world_size=ctx.world_size,
        device=device_name(ctx.device),
        threads=torch.get_num_threads(),
    )[:16]


def run_rate(cfg: LargeConfig, ctx: Dist, model: Callable[[], LLaMA], sampler: Any) -> Rate:
    """The run's tokens/s: the last run of this shape here, else a timed warm-up of the bare
    `model()` on `sampler`'s first batch, times the processes."""
    remembered = remembered_rate(rate_key(cfg, ctx))
    if remembered:
        return Rate(remembered, "last run")
    one = warmup_rate(
        model(),
        sampler,
        min(cfg.optim.micro_batch_size or cfg.optim.batch_size, cfg.optim.batch_size // ctx.world_size),
        functools.partial(autocast, cfg.optim.precision, ctx.device),
    )
    return Rate(one * ctx.world_size, f"{ctx.world_size} process(es) x {amount(one)}, timed warm-up")


def announce(what: str, cfg: LargeConfig, ctx: Dist, model: LLaMA, sampler: MixtureSampler, start: int) -> None:
    """Print the run's plan: tokens to train, tokens/s (the last run of this shape here, else a
    timed warm-up of the bare model on this process), ETA; warn when it is unreasonable on CPU."""
    per_step = tokens_per_step(cfg.optim, cfg.model.context)
    rate = run_rate(cfg, ctx, lambda: model, sampler)
    steps = cfg.optim.steps - start
    resumed = f" from step {start}" if start else ""
    Plan(
        what,
        f"{steps} steps{resumed} x {amount(per_step)} tokens",
        steps * per_step,
        device_name(ctx.device),
        rate,
        SLOW_HINT,
    ).announce()


def train(run: LargeRun) -> None:
    """Train from the resumed step to the last, in chunks of `checkpoint_every` steps; after
    each chunk rank 0 logs the validation loss and saves a checkpoint, and all ranks wait.
    Rank 0 keeps the tokens/s it measured for the next plan of this shape on this machine."""
    optim = run.cfg.optim
    per_step = tokens_per_step(optim, run.cfg.model.context)
    started = time.perf_counter()
    step = run.start
    with progress(
        total=optim.steps, initial=run.start, desc=f"train {run.name}", unit="step", disable=not run.ctx.main
    ) as bar:
        logger = StepLogger(bar, run.curves, per_step)
        while step < optim.steps:
            stop = min(optim.steps, step + run.cfg.checkpoint_every)
            train_steps(
                run.net,
                run.optimizer,
                run.sampler,
                optim,
                start=step,
                stop=stop,
                rank_batch_size=run.rank_batch,
                on_step=logger,
            )
            step = stop
            if run.ctx.main:
                val = run.valid_loss()
                run.curves.log(
                    step, {f"val/{d}": v for d, v in val.items()} | {"val/mean": float(np.mean(list(val.values())))}
                )
                save_checkpoint(run.checkpoint, run.model, run.optimizer, step, run.fingerprint)
            run.ctx.barrier()
    if run.ctx.main and step > run.start:
        remember_rate(
            rate_key(run.cfg, run.ctx), (step - run.start) * per_step / (time.perf_counter() - started), what="large"
        )


def finish(run: LargeRun, started: float) -> dict:
    """Rank 0 scores the final model, exports it for HF and writes run.json (returned; the
    other ranks return {}). `started`: perf_counter() when training began, for `wall_s`."""
    summary: dict[str, Any] = {}
    if run.ctx.main:
        cfg, context = run.cfg, run.cfg.model.context
        drawn = run.sampler.sequences_drawn(cfg.optim.steps, run.rank_batch, run.ctx.world_size)
        seen = {d: n * context for d, n in drawn.items()}
        val = run.valid_loss()
        export_hf(run.model, run.tokens_dir, run.out_dir / HF_DIR)
        summary = {
            "name": run.name,
            "mixture": run.mixture,
            "steps": cfg.optim.steps,
            "tokens": train_tokens(cfg.optim, context),
            "world_size": run.ctx.world_size,
            "params": run.model.num_params(),
            "params_with_embeddings": run.model.num_params(False),
            "budget": run.budget,
            "tokens_seen": seen,
            "valid_loss": val,
            "fingerprint": run.fingerprint,
            "resumed_from": run.start,
            "wall_s": round(time.perf_counter() - started, 2),
        }
        write_json(run.out_dir / RUN_FILE, summary)
        run.curves.close({"tokens": summary["tokens"], "epochs": {d: b["epochs"] for d, b in run.budget.items()}})
    run.ctx.barrier()
    return summary


def train_large(
    name: str,
    mixture: Mapping[str, float],
    cfg: LargeConfig,
    seed: int,
    tokens_dir: str | Path,
    out_dir: str | Path,
    log_dir: str | Path,
    threads: int | None = None,
    max_epochs: float | None = None,
) -> dict:
    """Train (or resume) mixture `name`; write checkpoint, HF export and run.json to `out_dir`.

    Run it plainly for one process, or under `torchrun --nproc_per_node N` for data parallel.
    `threads`: torch threads on CPU (None: the cores, shared between local processes).
    Returns the run summary (rank 0 writes it to `out_dir/run.json`).
    """
    run = setup(name, mixture, cfg, seed, tokens_dir, out_dir, log_dir, threads, max_epochs)
    started = time.perf_counter()
    train(run)
    return finish(run, started)
