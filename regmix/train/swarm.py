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
    REGMIX_SLURM_LOGS=DIR      submitit's folder: task pickles and logs (default .regmix/train/slurm)
    REGMIX_SLURM_CLUSTER=local run the array on this machine with submitit's local executor
                               (for testing; default slurm)

Every backend stores a finished proxy with `store_proxy`; a Slurm array task does it itself
(`train_chunk`), so a killed or preempted array keeps what it finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing as mp
import os
import signal
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from regmix.config import ProxyConfig, SampleConfig
from regmix.data.shards import data_signature, open_tokens, read_meta
from regmix import runtime
from regmix.train import slurm
from regmix.train import store as machine_store
from regmix.errors import UserError
from regmix.files import atomic_path, read_json, write_json
from regmix.train.model import LLaMA
from regmix.progress import (Plan, Rate, amount, device_name, progress, remember_rate, remembered_rate, say,
                             warmup_rate)
from regmix.train.scores import missing_scores, score_model, scored_on, scoring_data
from regmix.tables import mixture_frame, weight_columns
from regmix.target import Target
from regmix.train.training import (MixtureSampler, autocast, config_hash, make_optimizer, resolve_precision,
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
    """`cfg` with the model's vocabulary taken from the token data when it is null, and
    precision `auto` made concrete for the device of the machine that plans the swarm."""
    return dataclasses.replace(cfg, model=resolve_vocab(cfg.model, read_meta(tokens_dir), "proxy.model"),
                               optim=resolve_precision(cfg.optim, default_device(), "proxy"))


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
def score_proxy(model: torch.nn.Module, cfg: ProxyConfig, tokens_dir: str | Path,
                only: list[str] | None = None) -> dict[str, float]:
    """A proxy's scores on the valid split of every scored set and task (regmix.train.scores), or of
    those `only` names (`loss.<set>`, `task.<name>` keys)."""
    data = scoring_data(str(tokens_dir), "valid", cfg.model.context, cfg.eval.windows_per_domain)
    return score_model(model, data if only is None else data.subset(only), cfg.eval.batch_size, cfg.optim.precision)


def train_proxy(mixture: Mapping[str, float], cfg: ProxyConfig, tokens_dir: str | Path, seed: int,
                device: torch.device | None = None) -> dict[str, Any]:
    """Train one proxy on `mixture`; its scores on every set and task, run statistics and
    weights (`state`, stored beside the scores: a set added later is scored, not trained again).

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
    return {"scores": score_proxy(net, cfg, tokens_dir), "scored_on": scored_on(str(tokens_dir)),
            "train_loss": last.get("loss"),
            "tokens": train_tokens(cfg.optim, cfg.model.context),
            "seconds": time.perf_counter() - start, "params": model.num_params(),
            "device": device.type, "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


# ---------------------------------------------------------------------- the store
STORE_KIND = "proxies"  # in the machine store: the swarm's and verify's proxies (a key says all)


def proxy_path(out_dir: str | Path, key: str) -> Path:
    return Path(out_dir) / f"{key}.json"


def weights_path(out_dir: str | Path, key: str) -> Path:
    return Path(out_dir) / f"{key}.safetensors"


def store_proxy(out_dir: str | Path, job: ProxyJob, cfg: ProxyConfig, seed: int, result: Mapping[str, Any]) -> None:
    """Write one finished proxy: its weights (`<key>.safetensors`), then its record
    (`<key>.json`, atomically: a proxy is stored once its record exists). The one writer of every backend."""
    result = dict(result)
    state = result.pop("state", None)
    if state is not None:
        with atomic_path(weights_path(out_dir, job.key)) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    write_json(proxy_path(out_dir, job.key), {"key": job.key, "mixture": job.mixture, "seed": seed,
                                               "config": dataclasses.asdict(cfg), **result})
    keep_proxy(out_dir, job.key)


def keep_proxy(out_dir: str | Path, key: str) -> None:
    """Keep a stored proxy's files in the machine store too (regmix.train.store): weights, then record."""
    if weights_path(out_dir, key).exists():
        machine_store.keep(weights_path(out_dir, key), STORE_KIND)
    machine_store.keep(proxy_path(out_dir, key), STORE_KIND)


def stored(out_dir: str | Path, key: str, tokens_dir: str | Path) -> str:
    """`scored` when the proxy's record has every set and task of the token data, `weights` when
    it lacks some but its weights are kept (it is scored again), else `missing` (it trains). A
    proxy missing from `out_dir` is brought back from the machine store when it is there."""
    machine_store.restore(weights_path(out_dir, key), STORE_KIND)
    if not machine_store.restore(proxy_path(out_dir, key), STORE_KIND):
        return "missing"
    if not missing_scores(read_json(proxy_path(out_dir, key)), tokens_dir):
        return "scored"
    return "weights" if weights_path(out_dir, key).exists() else "missing"


def rescore(out_dir: str | Path, key: str, cfg: ProxyConfig, tokens_dir: str | Path) -> None:
    """Score a stored proxy's weights on the sets and tasks its record lacks, and add them to it."""
    model = LLaMA(cfg.model)
    model.load_state_dict(load_file(str(weights_path(out_dir, key))))
    record = read_json(proxy_path(out_dir, key))
    missing = missing_scores(record, tokens_dir)
    record["scores"] = {**record.get("scores", {}),
                        **score_proxy(model.to(default_device()), cfg, tokens_dir, missing)}
    record["scored_on"] = {**record.get("scored_on", {}), **{k: scored_on(str(tokens_dir))[k] for k in missing}}
    write_json(proxy_path(out_dir, key), record)
    machine_store.keep(proxy_path(out_dir, key), STORE_KIND)


def store_each(results: Generator[tuple[ProxyJob, dict], None, None], cfg: ProxyConfig, seed: int,
               out_dir: str | Path) -> Iterator[ProxyJob]:
    """Store each (job, result) as it comes; yield the job once it is on disk. Closing this
    closes `results` at once (a backend stops its work then, not when garbage collected)."""
    with contextlib.closing(results):
        for job, result in results:
            store_proxy(out_dir, job, cfg, seed, result)
            yield job


# ------------------------------------------------------------------------ backends
def _init_worker(threads: int, counter: Any) -> None:
    # Ctrl-C reaches every process of the terminal's group: only the driver handles it (it
    # terminates the workers), so no worker prints a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
    except BaseException:
        # Ctrl-C, an error, or the caller stopping early: stop now. A worker holds nothing worth
        # waiting for (every finished proxy is already stored; a killed one retrains from scratch).
        terminate_workers(pool)
        raise
    finally:
        # Queued proxies are dropped; the pool's queues and semaphores are released before the
        # driver exits (nothing leaks to the resource tracker).
        pool.shutdown(wait=True, cancel_futures=True)


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes (Python 3.14's `terminate_workers`, earlier by hand)."""
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def run_ray(jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, seed: int,
            address: str | None, threads_per_worker: int) -> Iterator[tuple[ProxyJob, dict]]:
    """One Ray task per proxy, retried when its worker or node dies; yield each as it finishes.

    `tokens_dir` must be readable at the same path on every node (a shared filesystem).
    """
    import ray

    connect_ray(address)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0

    @ray.remote(num_cpus=threads_per_worker, num_gpus=gpus, max_retries=3)
    def task(job: ProxyJob) -> tuple[ProxyJob, dict]:
        torch.set_num_threads(threads_per_worker)
        return job, train_proxy(job.mixture, cfg, tokens_dir, seed)

    pending = [task.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


RAY_CONNECT_TRIES = 5  # ray.init's tries of a cluster's GCS, about a second each (Ray's default: 20)
RAY_PROBE_S = 5.0  # how long the address may take to accept a TCP connection
RAY_AUTH = ("set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in a file named by "
            "RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token); `ray get-auth-token` on the head prints it")


def connect_ray(address: str | None) -> None:
    """Join the Ray cluster at `address` (None: RAY_ADDRESS, else start or reuse a local Ray).

    One the driver cannot join is a UserError naming the address and the likely cause within
    seconds: the address must accept a TCP connection first, and ray.init tries the cluster's
    GCS `RAY_CONNECT_TRIES` times (RAY_gcs_server_port_wait_time_s, unless set already).
    """
    import ray

    if ray.is_initialized():
        return
    name, target = ("REGMIX_RAY_ADDRESS", address) if address else ("RAY_ADDRESS", os.environ.get("RAY_ADDRESS"))
    if not target or target in ("auto", "local"):
        ray.init(address=address, log_to_driver=False)
        return
    where = f"{name}={target}"
    check_reachable(target, where)
    unset = "RAY_gcs_server_port_wait_time_s" not in os.environ
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(RAY_CONNECT_TRIES))
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as e:  # ConnectionError, RuntimeError, AuthenticationError, by Ray version
        raise UserError(ray_failure(where, e, ray.__version__)) from None
    finally:
        if unset:
            del os.environ["RAY_gcs_server_port_wait_time_s"]


def check_reachable(target: str, where: str) -> None:
    """A UserError unless something accepts TCP connections at `target` ([ray://]host:port)."""
    parts = urlsplit(target if "://" in target else f"//{target}")
    if not parts.hostname or parts.port is None:
        raise UserError(f"{where}: expected host:port of the Ray head (its GCS port, 6379 unless "
                        f"`ray start --head --port` said otherwise)")
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=RAY_PROBE_S).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(f"no Ray head answers at {where} ({reason}). Start one there "
                        f"(`ray start --head --port={parts.port}`), or point REGMIX_RAY_ADDRESS at the "
                        f"head's host:port (what `ray start --head` printed), reachable from this machine") from None


def ray_failure(where: str, error: BaseException, version: str) -> str:
    """What a failed ray.init most likely means, from its error and the errors behind it."""
    chain, seen = [], error
    while seen is not None and len(chain) < 8:
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    said = " ".join(chain)
    if any(mark in said for mark in ("AuthenticationError", "InvalidAuthToken", "Unauthenticated")):
        return (f"the Ray cluster at {where} refused this client's authentication: it uses token "
                f"authentication and this client has no token, or another one: {RAY_AUTH}")
    return (f"cannot join the Ray cluster at {where}: {chain[0].splitlines()[0]}. Likely causes: what "
            f"listens there is not a Ray head (the address is the head's GCS port, 6379 unless "
            f"`ray start --head --port` said otherwise); the cluster uses token authentication and this "
            f"client lacks its token ({RAY_AUTH}); or the cluster runs another Ray version than this "
            f"client's {version}")


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
    slurm_logs: str = ".regmix/train/slurm"  # submitit's folder (task pickles, logs): outside DVC's outputs
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


# ------------------------------------------------------------------------ the plan
SLOW_HINT = ("fewer mixtures (sample.n_mixtures) or tokens per proxy (proxy.optim.steps), or GPUs "
             "(a GPU machine, or REGMIX_BACKEND=ray or slurm)")


def where_it_runs(placement: Placement) -> str:
    if placement.backend == "local":
        return device_name(default_device())
    if placement.backend == "ray":
        return f"Ray ({placement.ray_address or os.environ.get('RAY_ADDRESS') or 'local'})"
    return f"Slurm ({placement.slurm_cluster})"


def rate_key(cfg: ProxyConfig, placement: Placement, device: str) -> str:
    """What decides a swarm's speed: its proxies (speed-only settings too) and where they run."""
    return config_hash(rate="proxies", proxy=dataclasses.asdict(cfg), placement=dataclasses.asdict(placement),
                       device=device)[:16]


def swarm_rate(key: str, mixture: Mapping[str, float], cfg: ProxyConfig, tokens_dir: str | Path, seed: int,
               placement: Placement, workers: int) -> Rate | None:
    """The swarm's tokens/s: the last run's of the same key, else (local backend) a timed warm-up
    of one proxy times the workers; None for a cluster not measured yet."""
    remembered = remembered_rate(key)
    if remembered:
        return Rate(remembered, "last run")
    if placement.backend != "local":
        return None  # its nodes are not this machine
    sampler = MixtureSampler(tokens_dir, mixture, cfg.model.context, seed)
    one = measure_proxy(cfg, sampler, placement.threads_per_worker)
    return Rate(one * workers, f"{workers} worker(s) x {amount(one)}, timed warm-up")


def measure_proxy(cfg: ProxyConfig, sampler: Any, threads: int) -> float:
    """Tokens/s of one proxy process here: forward + backward passes of a fresh proxy model on
    `threads` threads, on the first batch of `sampler` (progress.warmup_rate). The global random
    state is left as it was."""
    device, before = default_device(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            model = LLaMA(cfg.model).to(device)
        return warmup_rate(model, sampler, min(cfg.optim.micro_batch_size or cfg.optim.batch_size, cfg.optim.batch_size),
                           functools.partial(autocast, cfg.optim.precision, device))
    finally:
        torch.set_num_threads(before)


def repeat_warnings(what: str, todo: list[ProxyJob], tokens_per_proxy: int, tokens_dir: str | Path,
                    max_epochs: float | None) -> list[str]:
    """One line per domain some proxy of `todo` would repeat more than `max_epochs` epochs."""
    lines = []
    for domain in (todo[0].mixture if todo and max_epochs is not None else {}):
        weight = max(job.mixture[domain] for job in todo)
        available = len(open_tokens(tokens_dir, "train", domain))
        epochs = weight * tokens_per_proxy / max(1, available)
        if epochs > max_epochs:
            lines.append(f"{what}: a proxy repeats domain {domain!r} up to {epochs:.1f} epochs (weight "
                         f"{weight:.3g} x {amount(tokens_per_proxy)} tokens of {amount(available)} train "
                         f"tokens), more than sample.max_epochs={max_epochs:g}: more data for it, or fewer "
                         f"tokens per proxy (proxy.optim.steps)")
    return lines


def run_swarm(mixtures: pd.DataFrame, cfg: ProxyConfig, tokens_dir: str | Path, out_dir: str | Path,
              seed: int, placement: Placement = Placement(),
              max_epochs: float | None = SampleConfig.max_epochs) -> tuple[pd.DataFrame, dict]:
    """Train every mixture's proxy not already in `out_dir`; the proxies table and run stats.

    The table has `id`, the weight columns and one `loss.<domain>` column per domain, in the
    order of `mixtures`. Stats cover the proxies trained by this call. First it prints the plan
    (proxies x tokens, tokens/s, ETA) and warns when a proxy would repeat a domain more than
    `max_epochs` epochs (`sample.max_epochs`; None: never) or a CPU would take over a day.
    """
    cfg = resolve_config(cfg, tokens_dir)
    out_dir = Path(out_dir)
    jobs = plan(mixtures, cfg, tokens_dir, seed)
    unique = {j.key: j for j in jobs}  # identical mixtures train once
    state = {key: stored(out_dir, key, tokens_dir) for key in unique}
    todo = [j for key, j in unique.items() if state[key] == "missing"]
    rescored = [key for key in unique if state[key] == "weights"]
    scoring = time.perf_counter()
    for key in progress(rescored, desc=f"scoring stored proxies (seed {seed})", unit="proxy") if rescored else []:
        rescore(out_dir, key, cfg, tokens_dir)
    scoring = time.perf_counter() - scoring
    threads = placement.threads_per_worker
    pool = placement.workers or default_workers(threads)
    workers = min(pool, max(1, len(todo)))
    tokens_per_proxy = train_tokens(cfg.optim, cfg.model.context)
    what = f"proxies (seed {seed})"
    if placement.backend == "ray":
        connect_ray(placement.ray_address)  # a cluster that cannot be joined fails now, before any work
    device = where_it_runs(placement)
    key = rate_key(cfg, dataclasses.replace(placement, workers=pool), device)
    if todo:
        rate = swarm_rate(key, todo[0].mixture, cfg, tokens_dir, seed, placement, workers)
        Plan(what, f"{len(todo)} to train ({len(unique) - len(todo)} stored) x {amount(tokens_per_proxy)} tokens",
             len(todo) * tokens_per_proxy, device, rate, SLOW_HINT).announce(
            *repeat_warnings(what, todo, tokens_per_proxy, tokens_dir, max_epochs))
    else:
        say(f"{what}: all {len(unique)} stored, nothing to train")
    if placement.backend == "slurm":
        finished = run_slurm(todo, cfg, tokens_dir, out_dir, seed, placement)
    else:
        runner = (run_ray(todo, cfg, str(tokens_dir), seed, placement.ray_address, threads)
                  if placement.backend == "ray" else run_local(todo, cfg, str(tokens_dir), seed, workers, threads))
        finished = store_each(runner, cfg, seed, out_dir)
    start = time.perf_counter()
    with progress(total=len(unique), initial=len(unique) - len(todo), desc=what, unit="proxy") as bar, \
            contextlib.closing(finished):
        for trained, _ in enumerate(finished, 1):
            bar.set_postfix_str(f"{amount(trained * tokens_per_proxy / (time.perf_counter() - start))} tokens/s",
                                refresh=False)
            bar.update(1)
    seconds = time.perf_counter() - start
    if todo and (placement.backend != "local" or len(todo) >= pool):  # a full pool's speed: the next plan's rate
        remember_rate(key, len(todo) * tokens_per_proxy / seconds, what="proxies")
    with torch.device("meta"):  # parameter count without allocating the weights
        params = LLaMA(cfg.model).num_params()
    # Each stored proxy keeps its own training time: a rerun that trains nothing still reports
    # how fast the swarm's proxies trained (one worker's speed), not only this call's.
    proxy_seconds = (sum(read_json(proxy_path(out_dir, key))["seconds"] for key in unique) / len(unique)
                     if unique else None)
    stats = {"proxies": len(jobs), "trained": len(todo), "scored": len(rescored),
             "scoring_seconds": round(scoring, 2) if rescored else None, "seconds": round(seconds, 2),
             "tokens_per_s": round(len(todo) * tokens_per_proxy / seconds, 1) if todo else None,
             "proxy_seconds": round(proxy_seconds, 2) if unique else None,
             "proxy_tokens_per_s": round(tokens_per_proxy / proxy_seconds, 1) if unique else None,
             "tokens_per_proxy": tokens_per_proxy, "params": params, "precision": cfg.optim.precision,
             "backend": placement.backend,
             "workers": workers if placement.backend == "local" and todo else None}
    return collect(jobs, mixtures, out_dir), stats


def collect(jobs: list[ProxyJob], mixtures: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """The proxies table from the stored results of `jobs` (rows of `mixtures`): weights, then scores."""
    rows = [read_json(proxy_path(out_dir, job.key))["scores"] for job in jobs]
    return pd.concat([mixtures.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def run_seeds(mixtures: Mapping[str, Mapping[str, float]], cfg: ProxyConfig, tokens_dir: str | Path,
             store: str | Path, seeds: Sequence[int], target: Target, domains: Sequence[str],
             placement: Placement = Placement(),
             max_epochs: float | None = SampleConfig.max_epochs) -> pd.DataFrame:
    """Train each named mixture's proxy once per seed (kept in `store` like any proxy: a rerun
    trains only what is missing); one row per (mixture, seed): `mixture`, `seed`, the `target`
    loss, the weights and the scores (regmix.choose.verify judges them)."""
    weights = np.array([[m.get(d, 0.0) for d in domains] for m in mixtures.values()], dtype=float)
    frame = mixture_frame(list(mixtures), list(domains), weights.reshape(len(mixtures), len(domains)))
    tables = []
    for seed in seeds if mixtures else []:
        table, _ = run_swarm(frame, cfg, tokens_dir, store, seed, placement, max_epochs)
        losses = target.values(table, f"proxies (seed {seed})")
        tables.append(table.rename(columns={"id": "mixture"}).assign(seed=seed, target=losses))
    first = ["mixture", "seed", "target"]
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=first)
    return out[first + [c for c in out.columns if c not in first]]
