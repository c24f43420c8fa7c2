"""One proxy: its key, its job, its training and scoring, and its stored files.

A finished proxy is written to `<out_dir>/<key>.json` (its scores, run statistics and
config) beside `<key>.safetensors` (its weights), where `key` hashes everything that decides
its losses (mixture, proxy config, data, seed). Both are kept in the machine store too
(regmix.train.store), so a proxy missing from `out_dir` is brought back rather than trained.
A proxy stored before a set or task was added is scored on it from its weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator, Iterator, Mapping

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from regmix.config import ProxyConfig, train_tokens
from regmix.data.shards import data_signature, read_meta
from regmix.errors import UserError
from regmix.files import atomic_path, read_json, write_json
from regmix.tables import weight_columns
from regmix.train import store as machine_store
from regmix.train.model import LLaMA
from regmix.train.scores import missing_scores, score_model, scored_on, scoring_data
from regmix.train.training import (
    MixtureSampler,
    config_hash,
    make_optimizer,
    resolve_precision,
    resolve_vocab,
    train_steps,
)


@dataclass(frozen=True)
class ProxyJob:
    """One proxy to train: its mixture and the key its result is stored under."""

    key: str
    mixture: dict[str, float]


# ------------------------------------------------------------------ configuration
def resolve_config(cfg: ProxyConfig, tokens_dir: str | Path) -> ProxyConfig:
    """`cfg` with the model's vocabulary taken from the token data when it is null, and
    precision `auto` made concrete for the device of the machine that plans the swarm."""
    return dataclasses.replace(
        cfg,
        model=resolve_vocab(cfg.model, read_meta(tokens_dir), "proxy.model"),
        optim=resolve_precision(cfg.optim, default_device(), "proxy"),
    )


def proxy_key(mixture: Mapping[str, float], cfg: ProxyConfig, data: Mapping[str, Any], seed: int) -> str:
    """Hash of what decides a proxy's losses. Speed-only settings (threads, compile) are left
    out, and zero weights are dropped so that adding an unused domain keeps old proxies."""
    return config_hash(
        mixture={d: round(float(w), 12) for d, w in mixture.items() if w > 0},
        model=cfg.model,
        optim=cfg.optim,
        eval=cfg.eval,
        data=data,
        seed=seed,
    )[:24]


def plan(mixtures: pd.DataFrame, cfg: ProxyConfig, tokens_dir: str | Path, seed: int) -> list[ProxyJob]:
    """One job per row of a mixtures table, checked against the token data's domains."""
    domains = read_meta(tokens_dir).domains
    columns = weight_columns(mixtures)
    unknown = sorted(set(columns) - set(domains))
    if unknown:
        raise UserError(
            f"results/mixtures.csv has domain(s) {', '.join(unknown)} that data/tokens/meta.json does not list"
        )
    data = data_signature(tokens_dir, domains)
    jobs = []
    for row in mixtures.to_dict("records"):
        mixture = {d: float(row[d]) if d in columns else 0.0 for d in domains}
        jobs.append(ProxyJob(key=proxy_key(mixture, cfg, data, seed), mixture=mixture))
    return jobs


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------------- one proxy
def score_proxy(
    model: torch.nn.Module, cfg: ProxyConfig, tokens_dir: str | Path, only: list[str] | None = None
) -> dict[str, float]:
    """A proxy's scores on the valid split of every scored set and task (regmix.train.scores), or of
    those `only` names (`loss.<set>`, `task.<name>` keys)."""
    data = scoring_data(str(tokens_dir), "valid", cfg.model.context, cfg.eval.windows_per_domain)
    return score_model(model, data if only is None else data.subset(only), cfg.eval.batch_size, cfg.optim.precision)


def train_proxy(
    mixture: Mapping[str, float],
    cfg: ProxyConfig,
    tokens_dir: str | Path,
    seed: int,
    device: torch.device | None = None,
) -> dict[str, Any]:
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
    return {
        "scores": score_proxy(net, cfg, tokens_dir),
        "scored_on": scored_on(str(tokens_dir)),
        "train_loss": last.get("loss"),
        "tokens": train_tokens(cfg.optim, cfg.model.context),
        "seconds": time.perf_counter() - start,
        "params": model.num_params(),
        "device": device.type,
        "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


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
    write_json(
        proxy_path(out_dir, job.key),
        {"key": job.key, "mixture": job.mixture, "seed": seed, "config": dataclasses.asdict(cfg), **result},
    )
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
    record["scores"] = {**record.get("scores", {}), **score_proxy(model.to(default_device()), cfg, tokens_dir, missing)}
    record["scored_on"] = {**record.get("scored_on", {}), **{k: scored_on(str(tokens_dir))[k] for k in missing}}
    write_json(proxy_path(out_dir, key), record)
    machine_store.keep(proxy_path(out_dir, key), STORE_KIND)


def store_each(
    results: Generator[tuple[ProxyJob, dict], None, None], cfg: ProxyConfig, seed: int, out_dir: str | Path
) -> Iterator[ProxyJob]:
    """Store each (job, result) as it comes; yield the job once it is on disk. Closing this
    closes `results` at once (a backend stops its work then, not when garbage collected)."""
    with contextlib.closing(results):
        for job, result in results:
            store_proxy(out_dir, job, cfg, seed, result)
            yield job
