"""What a run of the whole pipeline trains, and how long it takes here: `regmix plan`.

The three training stages (proxies, verify, train) are nearly all of a run's time at any scale.
The plan counts their tokens from the params alone and rates them as the stages do before their
own work: the tokens/s of the last run of the same shape on this machine, else a timed warm-up of
the bare model on random tokens (seconds). Nothing is trained and no file is written. Work kept in
the machine store (regmix.train.store) is not counted off: the plan is that of a run from nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from regmix.choose.mixture_files import seeds_of
from regmix.config import (
    ActiveConfig,
    DataConfig,
    LargeConfig,
    ModelConfig,
    ProxyConfig,
    VerifyConfig,
    from_dict,
    train_tokens,
)
from regmix.data.shards import read_meta
from regmix.progress import Plan, amount, device_name, duration
from regmix.train import backends, large, swarm
from regmix.train.distributed import Dist
from regmix.train.model import LLaMA
from regmix.train.proxy import default_device
from regmix.train.training import resolve_precision

OTHER_STAGES = "prepare, sample, fit, search and evaluate are not counted: minutes at the demo's scale"


@dataclass(frozen=True)
class RandomTokens:
    """Batches of random token ids: what a warm-up needs before any data is prepared."""

    vocab_size: int
    context: int

    def batch(self, step: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.randint(self.vocab_size, (rows, self.context + 1), generator=torch.Generator().manual_seed(step))
        return data[:, :-1], data[:, 1:]


def vocab_size(params: Mapping[str, Any], tokens_dir: Path) -> int:
    """The tokenizer's vocabulary: the prepared data's when there is some, else the one the
    data section asks the tokenizer to train."""
    if (tokens_dir / "meta.json").exists():
        return read_meta(tokens_dir).vocab_size
    return from_dict(DataConfig, params["data"], "data.").tokenizer.vocab_size


def proxy_config(proxy: ProxyConfig, vocab: int) -> ProxyConfig:
    model = proxy.model if proxy.model.vocab_size else dataclasses.replace(proxy.model, vocab_size=vocab)
    return dataclasses.replace(proxy, model=model, optim=resolve_precision(proxy.optim, default_device(), "proxy"))


def swarm_plan(what: str, count: int, cfg: ProxyConfig, placement: backends.Placement) -> Plan:
    """`count` proxies of `cfg` where the swarm runs (regmix.train.backends' placement, regmix.train.swarm's rate)."""
    device = backends.where_it_runs(placement)
    pool = placement.workers or backends.default_workers(placement.threads_per_worker)
    workers = min(pool, max(1, count))
    key = swarm.rate_key(cfg, dataclasses.replace(placement, workers=pool), device)
    rate = swarm.swarm_rate(key, cfg, lambda: RandomTokens(cfg.model.vocab_size, cfg.model.context), placement, workers)
    per_proxy = train_tokens(cfg.optim, cfg.model.context)
    return Plan(what, f"{count} proxies x {amount(per_proxy)} tokens", count * per_proxy, device, rate, swarm.SLOW_HINT)


def fresh_model(cfg: ModelConfig, device: torch.device) -> LLaMA:
    """A model to time, built without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        return LLaMA(cfg).to(device)


def large_plan(params: Mapping[str, Any], vocab: int) -> Plan:
    """Every compared mixture's seeds, one run after another, each in one process here."""
    cfg = from_dict(LargeConfig, params["large"], "large.")
    ctx = Dist(rank=0, world_size=1, device=default_device())
    model_cfg = cfg.model if cfg.model.vocab_size else dataclasses.replace(cfg.model, vocab_size=vocab)
    cfg = dataclasses.replace(cfg, model=model_cfg, optim=resolve_precision(cfg.optim, ctx.device, "large"))
    runs = sum(map(len, seeds_of(cfg.mixtures, cfg.seeds, cfg.replicate, params["seed"]).values()))
    rate = large.run_rate(cfg, ctx, lambda: fresh_model(cfg.model, ctx.device), RandomTokens(vocab, cfg.model.context))
    per_run = train_tokens(cfg.optim, cfg.model.context)
    return Plan(
        "train",
        f"{len(cfg.mixtures)} mixtures, {runs} runs x {amount(per_run)} tokens",
        runs * per_run,
        device_name(ctx.device),
        rate,
        large.SLOW_HINT,
    )


def pipeline_plan(
    params: Mapping[str, Any], tokens_dir: str | Path = "data/tokens", placement: backends.Placement | None = None
) -> list[Plan]:
    """The proxies', verify's and the large runs' plans for `params` (a composed params.yaml)."""
    placement = placement or backends.placement_from_env()
    vocab = vocab_size(params, Path(tokens_dir))
    proxy = proxy_config(from_dict(ProxyConfig, params["proxy"], "proxy."), vocab)
    active = from_dict(ActiveConfig, params["active"], "active.")
    swarm_size = params["sample"]["n_mixtures"] + active.rounds * active.batch_size + proxy.replicates
    plans = [swarm_plan("proxies", swarm_size, proxy, placement)]
    verify = from_dict(VerifyConfig, params["verify"], "verify.")
    checked = [n for n in verify.mixtures if n in params["large"]["mixtures"]]
    if verify.seeds and checked:
        plans.append(swarm_plan("verify", verify.seeds * len(checked), verify.scale(proxy), placement))
    plans.append(large_plan(params, vocab))
    return plans


def describe(plans: list[Plan]) -> list[str]:
    """One line per plan, then the total: what `regmix plan` prints."""
    lines = [line for p in plans for line in (p.line(), *(f"  warning: {w}" for w in p.warnings()))]
    etas = [p.eta_s for p in plans]
    if None in etas:
        return [*lines, f"total: not known until a cluster's first results are in ({OTHER_STAGES})"]
    lines.append(f"total: ETA {duration(sum(etas))} ({OTHER_STAGES})")
    if any(p.needs_confirmation for p in plans):
        lines.append(
            "over an hour of CPU training: a proxy swarm or a large run planned over an hour stops before "
            "its work unless REGMIX_YES=1"
        )
    return lines
