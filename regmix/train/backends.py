"""Where proxies run: the placement, read from the environment, and the backends that train them.

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

import functools
import multiprocessing as mp
import os
import signal
import socket
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import torch

from regmix import runtime
from regmix.config import ProxyConfig
from regmix.errors import UserError
from regmix.progress import device_name
from regmix.train import slurm
from regmix.train.proxy import ProxyJob, default_device, proxy_path, store_each, train_proxy

BACKENDS = ("local", "ray", "slurm")
SLURM_CLUSTERS = ("slurm", "local")  # local: submitit's local executor, for testing


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
    return Placement(
        backend,
        runtime.positive_env("REGMIX_WORKERS"),
        runtime.proxy_threads(),
        os.environ.get("REGMIX_RAY_ADDRESS"),
        slurm_partition=os.environ.get("REGMIX_SLURM_PARTITION") or None,
        slurm_minutes=runtime.positive_env("REGMIX_SLURM_TIME") or Placement.slurm_minutes,
        slurm_gpus=_gpus_env("REGMIX_SLURM_GPUS"),
        slurm_cpus=runtime.positive_env("REGMIX_SLURM_CPUS"),
        slurm_chunk=runtime.positive_env("REGMIX_SLURM_CHUNK") or Placement.slurm_chunk,
        slurm_parallelism=runtime.positive_env("REGMIX_SLURM_PARALLELISM"),
        slurm_logs=os.environ.get("REGMIX_SLURM_LOGS") or Placement.slurm_logs,
        slurm_cluster=_choice_env("REGMIX_SLURM_CLUSTER", SLURM_CLUSTERS),
    )


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


def default_workers(threads_per_worker: int) -> int:
    """Local worker processes by default: one per GPU, else one per `threads_per_worker` cores."""
    if torch.cuda.is_available():
        return torch.cuda.device_count()
    return max(1, runtime.cpu_count() // max(1, threads_per_worker))


def where_it_runs(placement: Placement) -> str:
    """The device or cluster a plan names for `placement`."""
    if placement.backend == "local":
        return device_name(default_device())
    if placement.backend == "ray":
        return f"Ray ({placement.ray_address or os.environ.get('RAY_ADDRESS') or 'local'})"
    return f"Slurm ({placement.slurm_cluster})"


def run_jobs(
    jobs: list[ProxyJob],
    cfg: ProxyConfig,
    tokens_dir: str | Path,
    out_dir: Path,
    seed: int,
    placement: Placement,
    workers: int,
) -> Iterator[ProxyJob]:
    """Train and store `jobs` where `placement` says (`workers` processes on the local backend);
    yield each job once its proxy is stored."""
    if placement.backend == "slurm":
        return run_slurm(jobs, cfg, tokens_dir, out_dir, seed, placement)
    threads = placement.threads_per_worker
    runner = (
        run_ray(jobs, cfg, str(tokens_dir), seed, placement.ray_address, threads)
        if placement.backend == "ray"
        else run_local(jobs, cfg, str(tokens_dir), seed, workers, threads)
    )
    return store_each(runner, cfg, seed, out_dir)


# ---------------------------------------------------------------- local processes
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


def run_local(
    jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, seed: int, workers: int, threads_per_worker: int
) -> Iterator[tuple[ProxyJob, dict]]:
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
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(threads_per_worker, counter)
    )
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


# -------------------------------------------------------------------------- Ray
def run_ray(
    jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, seed: int, address: str | None, threads_per_worker: int
) -> Iterator[tuple[ProxyJob, dict]]:
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
RAY_AUTH = (
    "set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or in a file named by "
    "RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token); `ray get-auth-token` on the head prints it"
)


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
        raise UserError(
            f"{where}: expected host:port of the Ray head (its GCS port, 6379 unless "
            f"`ray start --head --port` said otherwise)"
        )
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=RAY_PROBE_S).close()
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise UserError(
            f"no Ray head answers at {where} ({reason}). Start one there "
            f"(`ray start --head --port={parts.port}`), or point REGMIX_RAY_ADDRESS at the "
            f"head's host:port (what `ray start --head` printed), reachable from this machine"
        ) from None


def ray_failure(where: str, error: BaseException, version: str) -> str:
    """What a failed ray.init most likely means, from its error and the errors behind it."""
    chain, seen = [], error
    while seen is not None and len(chain) < 8:
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    said = " ".join(chain)
    if any(mark in said for mark in ("AuthenticationError", "InvalidAuthToken", "Unauthenticated")):
        return (
            f"the Ray cluster at {where} refused this client's authentication: it uses token "
            f"authentication and this client has no token, or another one: {RAY_AUTH}"
        )
    return (
        f"cannot join the Ray cluster at {where}: {chain[0].splitlines()[0]}. Likely causes: what "
        f"listens there is not a Ray head (the address is the head's GCS port, 6379 unless "
        f"`ray start --head --port` said otherwise); the cluster uses token authentication and this "
        f"client lacks its token ({RAY_AUTH}); or the cluster runs another Ray version than this "
        f"client's {version}"
    )


# ------------------------------------------------------------------------ Slurm
def train_chunk(
    jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str, out_dir: str, seed: int, threads_per_worker: int
) -> list[str]:
    """One Slurm array task: train and store the proxies of `jobs` not stored yet (a requeued
    task resumes), one process per GPU or per `threads_per_worker` CPUs it was given. The keys
    it trained."""
    todo = [job for job in jobs if not proxy_path(out_dir, job.key).exists()]
    workers = min(default_workers(threads_per_worker), max(1, len(todo)))
    results = run_local(todo, cfg, tokens_dir, seed, workers, threads_per_worker)
    return [job.key for job in store_each(results, cfg, seed, out_dir)]


def run_slurm(
    jobs: list[ProxyJob], cfg: ProxyConfig, tokens_dir: str | Path, out_dir: Path, seed: int, placement: Placement
) -> Iterator[ProxyJob]:
    """A job array of chunks of `jobs` (paths made absolute for the nodes); yield each proxy as
    its file appears. `tokens_dir` and `out_dir` must be on a filesystem every node shares."""
    task = functools.partial(
        train_chunk,
        cfg=cfg,
        tokens_dir=str(Path(tokens_dir).absolute()),
        out_dir=str(out_dir.absolute()),
        seed=seed,
        threads_per_worker=placement.threads_per_worker,
    )
    return slurm.run_array(
        task, jobs, placement, done=lambda job: proxy_path(out_dir, job.key).exists(), name="regmix-proxies"
    )
