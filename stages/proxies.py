"""proxies: train one small model per mixture of the swarm (the RegMix proxies), and a few again
with another seed (the seed noise).

Each proxy is stored in the proxies folder as it finishes (kept across runs: a rerun trains only
what is missing); then the proxies table, the replicates table and the run's metrics. Where the
proxies run is set by the environment (REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_PROXY_THREADS,
REGMIX_RAY_ADDRESS, REGMIX_SLURM_*; see regmix/swarm.py), never by params.
"""

from __future__ import annotations

from regmix.checks import check_params
from regmix.config import ProxyConfig, from_dict
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.files import run_stage, write_json
from regmix.noise import REPLICATE_SEED_OFFSET, seed_noise
from regmix.swarm import placement_from_env, run_swarm
from regmix.tables import loss_columns, read_csv, write_csv
from regmix.target import Target
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards (prepare)", mixtures="swarm table (sample)",
                             store="folder of finished proxies (kept across runs)", table="proxies table (CSV) to write",
                             replicates="replicates table (CSV) to write", metrics="metrics (JSON) to write")
    check_params(params, read_meta(args.tokens).domains)
    cfg = from_dict(ProxyConfig, params["proxy"], "proxy.")
    mixtures = read_csv(args.mixtures)
    if not 0 <= cfg.replicates <= len(mixtures):
        raise UserError(f"proxy.replicates: {cfg.replicates} must be between 0 and the {len(mixtures)} swarm mixtures")
    placement = placement_from_env()
    max_epochs = params["sample"]["max_epochs"]
    table, stats = run_swarm(mixtures, cfg, args.tokens, args.store, params["seed"], placement, max_epochs)
    again, _ = run_swarm(mixtures.iloc[:cfg.replicates], cfg, args.tokens, args.store,
                         params["seed"] + REPLICATE_SEED_OFFSET, placement, max_epochs)
    write_csv(args.table, table)
    write_csv(args.replicates, again)
    losses = table[loss_columns(table)]
    # How much the mixture moves each domain's loss, beside how much the seed alone moves it:
    # a swarm whose spread is near the seed noise cannot separate mixtures.
    stats["loss_std"] = {c: round(float(losses[c].std()), 4) for c in losses.columns}
    stats["loss_mean"] = {c: round(float(losses[c].mean()), 4) for c in losses.columns}
    stats["seed_noise"] = seed_noise(table, again, Target.parse(params["target"]))
    write_json(args.metrics, stats)


if __name__ == "__main__":
    run_stage(main)
