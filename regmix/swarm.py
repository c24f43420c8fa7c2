"""Train the proxy swarm: many small models, one per mixture, in parallel and resumable.

Each finished proxy is written at once to `<out_dir>/<key>.json`, where `key` hashes
everything that decides its losses (mixture, proxy config, data, seed). A rerun after a
crash skips the proxies already on disk, and a grown swarm trains only the new mixtures.

Where proxies run is chosen outside the tracked params, so it never invalidates DVC's cache:

    REGMIX_BACKEND=local|ray|slurm  local process pool (default), a Ray cluster, or Slurm job arrays
    REGMIX_RAY_ADDRESS=...     the cluster to join (default: start or reuse a local Ray)
    REGMIX_WORKERS=N           local worker processes (default: one per core, or per GPU)
    REGMIX_PROXY_THREADS=N     torch threads in each worker (default 1)
    REGMIX_SLURM_PARTITION     partition of the array (default: the cluster's default)
    REGMIX_SLURM_TIME=MIN      time limit of one array task, in minutes (default 60)
    REGMIX_SLURM_GPUS=N        GPUs per array task (default 0)
    REGMIX_SLURM_CPUS=N        CPUs per array task (default REGMIX_PROXY_THREADS)
    REGMIX_SLURM_CHUNK=N       proxies per array task (default 1)
    REGMIX_SLURM_PARALLELISM=N array tasks running at once (default: submitit's, 256)
    REGMIX_SLURM_LOGS=DIR      submitit's folder: task pickles and logs (default .regmix/slurm)
    REGMIX_SLURM_CLUSTER=local run the array on this machine with submitit's local executor
                               (for testing; default slurm)

Every backend stores a finished proxy with `store_proxy`; a Slurm array task does it itself
(`train_chunk`), so a killed or preempted array keeps what it finished.
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
from regmix import runtime, slurm
from regmix.errors import UserError
from regmix.files import read_json, write_json
from regmix.model import LLaMA
from regmix.tables import LOSS_PREFIX, weight_columns
from regmix.training import (MixtureSampler, config_hash, eval_windows, evaluate_loss, make_optimizer,
                             resolve_vocab, train_steps, train_tokens)

BACKENDS = ("local", "ray", "slurm")
SLURM_CLUSTERS = ("slurm", "local")  # local: submitit's local executor, for testing


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


# ---------------------------------------------------------------------- the store
def proxy_path(out_dir: str | Path, key: str) -> Path:
    return Path(out_dir) / f"{key}.json"


def store_proxy(out_dir: str | Path, job: ProxyJob, cfg: ProxyConfig, seed: int, result: Mapping[str, Any]) -> None:
    """Write one finished proxy to `<out_dir>/<key>.json`, atomically: the one writer of every backend."""
    write_json(proxy_path(out_dir, job.key), {"key": job.key, "mixture": job.mixture, "seed": seed,
                                               "config": dataclasses.asdict(cfg), **result})


def store_each(results: Iterator[tuple[ProxyJob, dict]], cfg: ProxyConfig, seed: int,
               out_dir: str | Path) -> Iterator[ProxyJob]:
    """Store each (job, result) as it comes; yield the job once it is on disk."""
    for job, result in results:
        store_proxy(out_dir, job, cfg, seed, result)
        yield job


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


def train_chunk(jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, out_dir: str, seed: int,
                threads_per_worker: int) -> list[str]:
    """One Slurm array task: train and store the proxies of `jobs` not stored yet (a requeued
    task resumes), one process per GPU or per `threads_per_worker` CPUs it was given. The keys
    it trained."""
    todo = [job for job in jobs if not proxy_path(out_dir, job.key).exists()]
    workers = min(default_workers(threads_per_worker), max(1, len(todo)))
    results = run_local(todo, cfg, tokens_dir, seed, workers, threads_per_worker)
    return [job.key for job in store_each(results, cfg, seed, out_dir)]


def run_slurm(jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str | Path, out_dir: Path, seed: int,
              placement: Placement) -> Iterator[ProxyJob]:
    """A job array of chunks of `jobs` (paths made absolute for the nodes); yield each proxy as
    its file appears. `tokens_dir` and `out_dir` must be on a filesystem every node shares."""
    task = functools.partial(train_chunk, cfg=cfg, tokens_dir=str(Path(tokens_dir).absolute()),
                             out_dir=str(out_dir.absolute()), seed=seed,
                             threads_per_worker=placement.threads_per_worker)
    return slurm.run_array(task, jobs, placement, done=lambda job: proxy_path(out_dir, job.key).exists(),
                           name="regmix-proxies")


# ----------------------------------------------------------------------- the swarm
@dataclass(frozen=True)
class Placement:
    """Where the swarm runs; none of it changes a proxy's result."""

    backend: str = "local"  # local | ray | slurm
    workers: int | None = None  # local processes (None: one per core, or per GPU)
    threads_per_worker: int = 1  # torch threads in each worker
    ray_address: str | None = None  # None: start or reuse a local Ray
    slurm_partition: str | None = None  # None: the cluster's default partition
    slurm_minutes: int = 60  # time limit of one array task
    slurm_gpus: int = 0  # GPUs per array task (its proxies run one per GPU)
    slurm_cpus: int | None = None  # CPUs per array task (None: threads_per_worker)
    slurm_chunk: int = 1  # proxies per array task
    slurm_parallelism: int | None = None  # array tasks running at once (None: submitit's default)
    slurm_logs: str = ".regmix/slurm"  # submitit's folder (task pickles, logs): outside DVC's outputs
    slurm_cluster: str = "slurm"  # "local": submitit's local executor on this machine, for testing


def placement_from_env() -> Placement:
    """REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_PROXY_THREADS, REGMIX_RAY_ADDRESS and REGMIX_SLURM_*."""
    backend = _choice_env("REGMIX_BACKEND", BACKENDS)
    return Placement(backend, runtime.positive_env("REGMIX_WORKERS"), runtime.proxy_threads(),
                     os.environ.get("REGMIX_RAY_ADDRESS"),
                     slurm_partition=os.environ.get("REGMIX_SLURM_PARTITION") or None,
                     slurm_minutes=runtime.positive_env("REGMIX_SLURM_TIME") or Placement.slurm_minutes,
                     slurm_gpus=_gpus_env("REGMIX_SLURM_GPUS"), slurm_cpus=runtime.positive_env("REGMIX_SLURM_CPUS"),
                     slurm_chunk=runtime.positive_env("REGMIX_SLURM_CHUNK") or Placement.slurm_chunk,
                     slurm_parallelism=runtime.positive_env("REGMIX_SLURM_PARALLELISM"),
                     slurm_logs=os.environ.get("REGMIX_SLURM_LOGS") or Placement.slurm_logs,
                     slurm_cluster=_choice_env("REGMIX_SLURM_CLUSTER", SLURM_CLUSTERS))


def _choice_env(name: str, choices: tuple[str, ...]) -> str:
    """Environment variable `name`, one of `choices` (default: the first)."""
    value = os.environ.get(name) or choices[0]
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _gpus_env(name: str) -> int:
    """A GPU count from the environment: 0 (the default) or more."""
    value = os.environ.get(name) or "0"
    if not value.isdigit():
        raise UserError(f"{name} must be a whole number of GPUs (0 for none), got {value!r}")
    return int(value)


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
    todo = [j for key, j in unique.items() if not proxy_path(out_dir, key).exists()]
    threads = placement.threads_per_worker
    workers = min(placement.workers or default_workers(threads), max(1, len(todo)))
    tokens_per_proxy = train_tokens(cfg.optim, cfg.model.context)
    if placement.backend == "slurm":
        finished = run_slurm(todo, cfg, tokens_dir, out_dir, seed, placement)
    else:
        runner = (run_ray(todo, cfg, str(tokens_dir), seed, placement.ray_address, threads)
                  if placement.backend == "ray" else run_local(todo, cfg, str(tokens_dir), seed, workers, threads))
        finished = store_each(runner, cfg, seed, out_dir)
    start = time.perf_counter()
    with tqdm(total=len(unique), initial=len(unique) - len(todo), desc="proxies", unit="proxy") as bar:
        for trained, _ in enumerate(finished, 1):
            bar.update(1)
            bar.set_postfix(tok_s=f"{trained * tokens_per_proxy / (time.perf_counter() - start):.0f}")
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
        losses = read_json(proxy_path(out_dir, job.key))["losses"]
        rows.append({f"{LOSS_PREFIX}{d}": losses[d] for d in losses})
    return pd.concat([mixtures.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
