"""Train the proxy swarm: many small models, one per mixture, in parallel and resumable.

Each finished proxy is written at once to `<out_dir>/<key>.json`, where `key` hashes
everything that decides its losses (mixture, proxy config, data, seed). A rerun after a
crash skips the proxies already on disk, and a grown swarm trains only the new mixtures.

Where proxies run is chosen outside the tracked params, so it never invalidates DVC's cache:

    REGMIX_BACKEND=local|ray   local process pool (default) or a Ray cluster
    REGMIX_RAY_ADDRESS=...     the cluster to join (default: start or reuse a local Ray)
    REGMIX_WORKERS=N           local worker processes (default: one per core, or per GPU)
    REGMIX_PROXY_THREADS=N     torch threads in each worker (default 1)
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd
import torch
from tqdm import tqdm

from regmix.config import ProxyConfig
from regmix.data.shards import data_signature, read_meta
from regmix import runtime
from regmix.errors import UserError
from regmix.files import read_json, write_json
from regmix.model import LLaMA
from regmix.tables import LOSS_PREFIX, weight_columns
from regmix.training import (MixtureSampler, config_hash, eval_windows, evaluate_loss, make_optimizer,
                             resolve_vocab, train_steps, train_tokens)

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class ProxyJob:
    """One proxy to train: its mixture and the key its result is stored under."""

    key: str
    mixture: dict[str, float]


# ------------------------------------------------------------------ configuration
def resolve_config(cfg: ProxyConfig, tokens_dir: str | Path) -> ProxyConfig:
    """`cfg` with the model's vocabulary taken from the token data when it is null."""
    return dataclasses.replace(cfg, model=resolve_vocab(cfg.model, read_meta(tokens_dir), "proxy.model"))


def proxy_key(mixture: Mapping[str, float], cfg: ProxyConfig, data: Mapping[str, Any],
              seed: int) -> str:
    """Hash of what decides a proxy's losses. Speed-only settings (threads, compile) are left
    out, and zero weights are dropped so that adding an unused domain keeps old proxies."""
    return config_hash(mixture={d: round(float(w), 12) for d, w in mixture.items() if w > 0},
                       model=cfg.model, optim=cfg.optim, eval=cfg.eval, data=data, seed=seed)[:24]


def plan(mixtures: pd.DataFrame, cfg: ProxyConfig, tokens_dir: str | Path, seed: int) -> list[ProxyJob]:
    """One job per row of a mixtures table, checked against the token data's domains."""
    domains = read_meta(tokens_dir).domains
    columns = weight_columns(mixtures)
    unknown = sorted(set(columns) - set(domains))
    if unknown:
        raise UserError(f"results/mixtures.csv has domain(s) {', '.join(unknown)} that "
                        f"data/tokens/meta.json does not list")
    data = data_signature(tokens_dir, domains)
    jobs = []
    for row in mixtures.to_dict("records"):
        mixture = {d: float(row[d]) if d in columns else 0.0 for d in domains}
        jobs.append(ProxyJob(key=proxy_key(mixture, cfg, data, seed), mixture=mixture))
    return jobs


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------- one proxy
@functools.lru_cache(maxsize=4)
def _windows(tokens_dir: str, domains: tuple[str, ...], context: int, n: int) -> dict[str, torch.Tensor]:
    # Every proxy in a worker shares one set of validation windows.
    return eval_windows(tokens_dir, list(domains), context, n)


def train_proxy(mixture: Mapping[str, float], cfg: ProxyConfig, tokens_dir: str | Path, seed: int,
                device: torch.device | None = None) -> dict[str, Any]:
    """Train one proxy on `mixture`; its validation loss per domain and run statistics.

    `cfg.model.vocab_size` must be resolved (see `resolve_config`). The initial weights
    depend on `seed` alone, so every proxy starts from the same point and the losses differ
    only through the mixture (common random numbers: less noise in the regression).
    """
    device = device or default_device()
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = LLaMA(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg.optim)
    net = torch.compile(model) if cfg.optim.compile else model
    sampler = MixtureSampler(tokens_dir, mixture, cfg.model.context, seed)
    last = {}
    train_steps(net, optimizer, sampler, cfg.optim, on_step=lambda s, loss, lr: last.update(loss=loss))
    domains = tuple(read_meta(tokens_dir).domains)
    windows = _windows(str(tokens_dir), domains, cfg.model.context, cfg.eval.windows_per_domain)
    losses = evaluate_loss(net, windows, cfg.eval.batch_size, cfg.optim.precision)
    return {"losses": losses, "train_loss": last.get("loss"),
            "tokens": train_tokens(cfg.optim, cfg.model.context),
            "seconds": time.perf_counter() - start, "params": model.num_params(),
            "device": device.type}


# ------------------------------------------------------------------------ backends
def _init_worker(threads: int, counter: Any) -> None:
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        with counter.get_lock():  # one GPU per worker, round robin
            torch.cuda.set_device(counter.value % torch.cuda.device_count())
            counter.value += 1


def _local_worker(job: ProxyJob, cfg: ProxyConfig, tokens_dir: str, seed: int) -> tuple[ProxyJob, dict]:
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
    return job, train_proxy(job.mixture, cfg, tokens_dir, seed, device)


def default_workers(threads_per_worker: int) -> int:
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, runtime.cpu_count() // max(1, threads_per_worker))


def run_local(jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, seed: int,
              workers: int, threads_per_worker: int) -> Iterator[tuple[ProxyJob, dict]]:
    """Train `jobs` in `workers` single-purpose processes; yield each as it finishes."""
    if workers <= 1:  # in-process: no start-up cost, and tracebacks stay readable
        torch.set_num_threads(threads_per_worker)
        for job in jobs:
            yield job, train_proxy(job.mixture, cfg, tokens_dir, seed)
        return
    # forkserver: workers fork from a server that has imported torch (fast start) but never
    # ran an op (no inherited thread pools, unlike plain fork).
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    counter = ctx.Value("i", 0)
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(threads_per_worker, counter))
    try:
        futures = [pool.submit(_local_worker, job, cfg, tokens_dir, seed) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    finally:
        # On an error or Ctrl-C, drop the queued proxies instead of finishing them all.
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, seed: int,
            address: str | None, threads_per_worker: int) -> Iterator[tuple[ProxyJob, dict]]:
    """One Ray task per proxy, retried when its worker or node dies; yield each as it finishes.

    `tokens_dir` must be readable at the same path on every node (a shared filesystem).
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0

    @ray.remote(num_cpus=threads_per_worker, num_gpus=gpus, max_retries=3)
    def task(job: ProxyJob) -> tuple[ProxyJob, dict]:
        torch.set_num_threads(threads_per_worker)
        return job, train_proxy(job.mixture, cfg, tokens_dir, seed)

    pending = [task.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


# ----------------------------------------------------------------------- the swarm
@dataclass(frozen=True)
class Placement:
    """Where the swarm runs; none of it changes a proxy's result."""

    backend: str = "local"  # local | ray
    workers: int | None = None  # local processes (None: one per core, or per GPU)
    threads_per_worker: int = 1  # torch threads in each worker
    ray_address: str | None = None  # None: start or reuse a local Ray


def placement_from_env() -> Placement:
    """REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_PROXY_THREADS and REGMIX_RAY_ADDRESS."""
    backend = os.environ.get("REGMIX_BACKEND", "local")
    if backend not in BACKENDS:
        raise UserError(f"REGMIX_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return Placement(backend, runtime.positive_env("REGMIX_WORKERS"), runtime.proxy_threads(),
                     os.environ.get("REGMIX_RAY_ADDRESS"))


def run_swarm(mixtures: pd.DataFrame, cfg: ProxyConfig, tokens_dir: str | Path, out_dir: str | Path,
              seed: int, placement: Placement = Placement()) -> tuple[pd.DataFrame, dict]:
    """Train every mixture's proxy not already in `out_dir`; the proxies table and run stats.

    The table has `id`, the weight columns and one `loss.<domain>` column per domain, in the
    order of `mixtures`. Stats cover the proxies trained by this call.
    """
    cfg = resolve_config(cfg, tokens_dir)
    out_dir = Path(out_dir)
    jobs = plan(mixtures, cfg, tokens_dir, seed)
    unique = {j.key: j for j in jobs}  # identical mixtures train once
    todo = [j for key, j in unique.items() if not (out_dir / f"{key}.json").exists()]
    threads = placement.threads_per_worker
    workers = min(placement.workers or default_workers(threads), max(1, len(todo)))
    tokens_per_proxy = train_tokens(cfg.optim, cfg.model.context)
    runner = (run_ray(todo, cfg, str(tokens_dir), seed, placement.ray_address, threads)
              if placement.backend == "ray" else run_local(todo, cfg, str(tokens_dir), seed, workers, threads))
    start = time.perf_counter()
    bar = tqdm(total=len(unique), initial=len(unique) - len(todo), desc="proxies", unit="proxy")
    for trained, (job, result) in enumerate(runner, 1):
        write_json(out_dir / f"{job.key}.json", {"key": job.key, "mixture": job.mixture, "seed": seed,
                                                 "config": dataclasses.asdict(cfg), **result})
        bar.update(1)
        bar.set_postfix(tok_s=f"{trained * tokens_per_proxy / (time.perf_counter() - start):.0f}")
    bar.close()
    seconds = time.perf_counter() - start
    with torch.device("meta"):  # parameter count without allocating the weights
        params = LLaMA(cfg.model).num_params()
    stats = {"proxies": len(jobs), "trained": len(todo), "seconds": round(seconds, 2),
             "tokens_per_s": round(len(todo) * tokens_per_proxy / seconds, 1) if todo else None,
             "tokens_per_proxy": tokens_per_proxy, "params": params, "backend": placement.backend,
             "workers": workers if placement.backend == "local" else None}
    return collect(jobs, mixtures, out_dir), stats


def collect(jobs: list[ProxyJob], mixtures: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """The proxies table from the stored results of `jobs` (rows of `mixtures`)."""
    rows = []
    for job in jobs:
        losses = read_json(out_dir / f"{job.key}.json")["losses"]
        rows.append({f"{LOSS_PREFIX}{d}": losses[d] for d in losses})
    return pd.concat([mixtures.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
