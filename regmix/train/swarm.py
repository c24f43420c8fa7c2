"""Train the proxy swarm: many small models, one per mixture, in parallel and resumable.

Each finished proxy is stored at once under its key (regmix.train.proxy). A rerun after a
crash skips the proxies already on disk, and a grown swarm trains only the new mixtures.
Before any training it prints the plan (proxies x tokens, tokens/s, ETA): the rate is the last
run's of the same proxies and placement, else a warm-up timed here. Where the proxies train is
regmix.train.backends'.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from regmix.config import ProxyConfig, SampleConfig, train_tokens
from regmix.data.shards import open_tokens
from regmix.files import read_json
from regmix.progress import Plan, Rate, amount, progress, remember_rate, remembered_rate, say, warmup_rate
from regmix.tables import mixture_frame
from regmix.target import Target
from regmix.train.backends import Placement, connect_ray, default_workers, run_jobs, where_it_runs
from regmix.train.model import LLaMA
from regmix.train.proxy import ProxyJob, default_device, plan, proxy_path, rescore, resolve_config, stored
from regmix.train.training import MixtureSampler, autocast, config_hash

# ------------------------------------------------------------------------ the plan
SLOW_HINT = (
    "fewer mixtures (sample.n_mixtures) or tokens per proxy (proxy.optim.steps), or GPUs "
    "(a GPU machine, or REGMIX_BACKEND=ray or slurm)"
)


def rate_key(cfg: ProxyConfig, placement: Placement, device: str) -> str:
    """What decides a swarm's speed: its proxies (speed-only settings too) and where they run."""
    return config_hash(
        rate="proxies", proxy=dataclasses.asdict(cfg), placement=dataclasses.asdict(placement), device=device
    )[:16]


def swarm_rate(
    key: str, cfg: ProxyConfig, sampler: Callable[[], Any], placement: Placement, workers: int
) -> Rate | None:
    """The swarm's tokens/s: the last run's of the same key, else (local backend) a timed warm-up
    of one proxy times the workers, on the batches `sampler()` gives; None for a cluster not
    measured yet."""
    remembered = remembered_rate(key)
    if remembered:
        return Rate(remembered, "last run")
    if placement.backend != "local":
        return None  # its nodes are not this machine
    one = measure_proxy(cfg, sampler(), placement.threads_per_worker)
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
        batch = min(cfg.optim.micro_batch_size or cfg.optim.batch_size, cfg.optim.batch_size)
        return warmup_rate(model, sampler, batch, functools.partial(autocast, cfg.optim.precision, device))
    finally:
        torch.set_num_threads(before)


def repeat_warnings(
    what: str, todo: list[ProxyJob], tokens_per_proxy: int, tokens_dir: str | Path, max_epochs: float | None
) -> list[str]:
    """One line per domain some proxy of `todo` would repeat more than `max_epochs` epochs."""
    lines = []
    for domain in todo[0].mixture if todo and max_epochs is not None else {}:
        weight = max(job.mixture[domain] for job in todo)
        available = len(open_tokens(tokens_dir, "train", domain))
        epochs = weight * tokens_per_proxy / max(1, available)
        if epochs > max_epochs:
            lines.append(
                f"{what}: a proxy repeats domain {domain!r} up to {epochs:.1f} epochs (weight "
                f"{weight:.3g} x {amount(tokens_per_proxy)} tokens of {amount(available)} train "
                f"tokens), more than sample.max_epochs={max_epochs:g}: more data for it, or fewer "
                f"tokens per proxy (proxy.optim.steps)"
            )
    return lines


def run_swarm(
    mixtures: pd.DataFrame,
    cfg: ProxyConfig,
    tokens_dir: str | Path,
    out_dir: str | Path,
    seed: int,
    placement: Placement = Placement(),
    max_epochs: float | None = SampleConfig.max_epochs,
) -> tuple[pd.DataFrame, dict]:
    """Train every mixture's proxy not already in `out_dir`; the proxies table and run stats.

    The table has `id`, the weight columns and one `loss.<domain>` column per domain, in the
    order of `mixtures`. Stats cover the proxies trained by this call. First it prints the plan
    (proxies x tokens, tokens/s, ETA) and warns when a proxy would repeat a domain more than
    `max_epochs` epochs (`sample.max_epochs`; None: never) or a CPU would take over a day.
    """
    cfg = resolve_config(cfg, tokens_dir)
    out_dir = Path(out_dir)
    jobs = plan(mixtures, cfg, tokens_dir, seed)
    unique, todo, rescored = triage(jobs, out_dir, tokens_dir)
    scoring = rescore_stored(out_dir, rescored, cfg, tokens_dir, seed)
    pool = placement.workers or default_workers(placement.threads_per_worker)
    workers = min(pool, max(1, len(todo)))
    tokens_per_proxy = train_tokens(cfg.optim, cfg.model.context)
    what = f"proxies (seed {seed})"
    if placement.backend == "ray":
        connect_ray(placement.ray_address)  # a cluster that cannot be joined fails now, before any work
    device = where_it_runs(placement)
    key = rate_key(cfg, dataclasses.replace(placement, workers=pool), device)
    if todo:
        first = functools.partial(MixtureSampler, tokens_dir, todo[0].mixture, cfg.model.context, seed)
        rate = swarm_rate(key, cfg, first, placement, workers)
        Plan(
            what,
            f"{len(todo)} to train ({len(unique) - len(todo)} stored) x {amount(tokens_per_proxy)} tokens",
            len(todo) * tokens_per_proxy,
            device,
            rate,
            SLOW_HINT,
        ).announce(*repeat_warnings(what, todo, tokens_per_proxy, tokens_dir, max_epochs))
    else:
        say(f"{what}: all {len(unique)} stored, nothing to train")
    finished = run_jobs(todo, cfg, tokens_dir, out_dir, seed, placement, workers)
    seconds = train_under_bar(finished, what, len(unique), len(todo), tokens_per_proxy)
    if todo and (placement.backend != "local" or len(todo) >= pool):  # a full pool's speed: the next plan's rate
        remember_rate(key, len(todo) * tokens_per_proxy / seconds, what="proxies")
    stats = {
        "proxies": len(jobs),
        "trained": len(todo),
        "scored": len(rescored),
        "scoring_seconds": round(scoring, 2) if rescored else None,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(len(todo) * tokens_per_proxy / seconds, 1) if todo else None,
        **proxy_stats(cfg, out_dir, list(unique)),
        "backend": placement.backend,
        "workers": workers if placement.backend == "local" and todo else None,
    }
    return collect(jobs, mixtures, out_dir), stats


def triage(
    jobs: list[ProxyJob], out_dir: Path, tokens_dir: str | Path
) -> tuple[dict[str, ProxyJob], list[ProxyJob], list[str]]:
    """The swarm's distinct proxies by key (identical mixtures train once), those to train (not
    stored, or lacking scores without the weights to score again) and the keys of those stored
    with weights but lacking scores (scored again)."""
    unique = {j.key: j for j in jobs}
    state = {key: stored(out_dir, key, tokens_dir) for key in unique}
    todo = [j for key, j in unique.items() if state[key] == "missing"]
    rescored = [key for key in unique if state[key] == "weights"]
    return unique, todo, rescored


def rescore_stored(out_dir: Path, keys: list[str], cfg: ProxyConfig, tokens_dir: str | Path, seed: int) -> float:
    """Score the stored proxies of `keys` on the sets and tasks their records lack; the seconds it took."""
    start = time.perf_counter()
    for key in progress(keys, desc=f"scoring stored proxies (seed {seed})", unit="proxy") if keys else []:
        rescore(out_dir, key, cfg, tokens_dir)
    return time.perf_counter() - start


def train_under_bar(finished: Iterator[ProxyJob], what: str, total: int, todo: int, tokens_per_proxy: int) -> float:
    """Run `finished` (a backend's stored proxies, as they come) to its end under a progress bar of
    all `total` proxies, with the tokens/s of the `todo` trained now; the seconds it took."""
    start = time.perf_counter()
    with progress(total=total, initial=total - todo, desc=what, unit="proxy") as bar, contextlib.closing(finished):
        for trained, _ in enumerate(finished, 1):
            bar.set_postfix_str(
                f"{amount(trained * tokens_per_proxy / (time.perf_counter() - start))} tokens/s", refresh=False
            )
            bar.update(1)
    return time.perf_counter() - start


def proxy_stats(cfg: ProxyConfig, out_dir: Path, keys: list[str]) -> dict[str, Any]:
    """One proxy's training time and tokens/s (the mean over the stored proxies of `keys`), tokens,
    parameters and precision."""
    tokens_per_proxy = train_tokens(cfg.optim, cfg.model.context)
    with torch.device("meta"):  # parameter count without allocating the weights
        params = LLaMA(cfg.model).num_params()
    # Each stored proxy keeps its own training time: a rerun that trains nothing still reports
    # how fast the swarm's proxies trained (one worker's speed), not only this call's.
    proxy_seconds = sum(read_json(proxy_path(out_dir, key))["seconds"] for key in keys) / len(keys) if keys else None
    return {
        "proxy_seconds": round(proxy_seconds, 2) if keys else None,
        "proxy_tokens_per_s": round(tokens_per_proxy / proxy_seconds, 1) if keys else None,
        "tokens_per_proxy": tokens_per_proxy,
        "params": params,
        "precision": cfg.optim.precision,
    }


def collect(jobs: list[ProxyJob], mixtures: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """The proxies table from the stored results of `jobs` (rows of `mixtures`): weights, then scores."""
    rows = [read_json(proxy_path(out_dir, job.key))["scores"] for job in jobs]
    return pd.concat([mixtures.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def run_seeds(
    mixtures: Mapping[str, Mapping[str, float]],
    cfg: ProxyConfig,
    tokens_dir: str | Path,
    store: str | Path,
    seeds: Sequence[int],
    target: Target,
    domains: Sequence[str],
    placement: Placement = Placement(),
    max_epochs: float | None = SampleConfig.max_epochs,
) -> pd.DataFrame:
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
