"""proxies: train one small model per mixture of the swarm (the RegMix proxies), then `active.rounds`
rounds of proxies placed where they decide (regmix.choose.active), and a few swarm mixtures again with
another seed (the seed noise).

Each proxy is stored in the proxies folder as it finishes (kept across runs: a rerun trains only
what is missing); then the proxies table, the replicates table, each domain's loss spread beside
its seed noise, and the run's metrics. Where the
proxies run is set by the environment (REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_PROXY_THREADS,
REGMIX_RAY_ADDRESS, REGMIX_SLURM_*; see regmix/train/backends.py), never by params.
"""

from __future__ import annotations

import pandas as pd

from regmix.checks import check_params
from regmix.choose.active import combine_stats, run_rounds
from regmix.choose.noise import REPLICATE_SEED_OFFSET, domain_spread, seed_noise
from regmix.choose.sampling import swarm_generator
from regmix.config import ActiveConfig, LargeConfig, ProxyConfig, SampleConfig, from_dict
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.files import run_stage, write_json
from regmix.judge import headline
from regmix.tables import read_csv, read_domains, write_csv
from regmix.target import run_target
from regmix.train.backends import placement_from_env
from regmix.train.swarm import run_swarm
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        tokens="token shards (prepare)",
        domains="domains table (prepare)",
        mixtures="swarm table (sample)",
        store="folder of finished proxies (kept across runs)",
        table="proxies table (CSV) to write",
        replicates="replicates table (CSV) to write",
        spread="per-domain loss spread and seed noise (CSV) to write",
        record="the run's record (JSON) to write",
        headline="its headline metrics (JSON) to write",
    )
    meta = read_meta(args.tokens)
    check_params(params, meta.domains, meta.held_out, meta.tasks)
    cfg = from_dict(ProxyConfig, params["proxy"], "proxy.")
    active = from_dict(ActiveConfig, params["active"], "active.")
    # rounds draw their candidates from the swarm's own generator: its prior, caps and grid
    gen = swarm_generator(
        from_dict(SampleConfig, params["sample"], "sample."),
        from_dict(LargeConfig, params["large"], "large."),
        read_domains(args.domains),
    )
    mixtures = read_csv(args.mixtures)
    if not 0 <= cfg.replicates <= len(mixtures):
        raise UserError(f"proxy.replicates: {cfg.replicates} must be between 0 and the {len(mixtures)} swarm mixtures")
    placement = placement_from_env()
    rounds = []

    def train(batch: pd.DataFrame) -> pd.DataFrame:
        table, stats = run_swarm(batch, cfg, args.tokens, args.store, params["seed"], placement, gen.max_epochs)
        rounds.append(stats)
        return table

    swarm = train(mixtures)
    target = run_target(params, meta.domains, swarm)
    table = run_rounds(swarm, gen, active, target, params["seed"], train)
    stats = combine_stats(rounds)
    again, _ = run_swarm(
        mixtures.iloc[: cfg.replicates],
        cfg,
        args.tokens,
        args.store,
        params["seed"] + REPLICATE_SEED_OFFSET,
        placement,
        gen.max_epochs,
    )
    write_csv(args.table, table)
    write_csv(args.replicates, again)
    noise = seed_noise(table, again, target)
    write_csv(args.spread, domain_spread(table, noise))
    # per-domain detail is in the spread table
    stats["seed_noise"] = {k: v for k, v in noise.items() if k != "domain_std"}
    write_json(args.record, stats)
    write_json(args.headline, headline.proxies(stats))


if __name__ == "__main__":
    run_stage(main)
