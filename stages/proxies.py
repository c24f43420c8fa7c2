"""proxies: train one small model per mixture of the swarm (the RegMix proxies).

Each proxy is stored in the proxies folder as it finishes (kept across runs: a rerun trains only
what is missing); then the proxies table and the run's metrics. Where the proxies run is set by
the environment (REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_PROXY_THREADS, REGMIX_RAY_ADDRESS;
see regmix/swarm.py), never by params.
"""

from __future__ import annotations

from regmix.config import ProxyConfig, from_dict
from regmix.files import run_stage, write_json
from regmix.swarm import placement_from_env, run_swarm
from regmix.tables import loss_columns, read_csv, write_csv
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards (prepare)", mixtures="swarm table (sample)",
                             store="folder of finished proxies (kept across runs)", table="proxies table (CSV) to write",
                             metrics="metrics (JSON) to write")
    cfg = from_dict(ProxyConfig, params["proxy"], "proxy.")
    table, stats = run_swarm(read_csv(args.mixtures), cfg, args.tokens, args.store, params["seed"],
                             placement_from_env())
    write_csv(args.table, table)
    losses = table[loss_columns(table)]
    # How much the mixture moves each domain's loss: a swarm too small or too short to
    # separate mixtures shows a spread near the seed noise.
    stats["loss_std"] = {c: round(float(losses[c].std()), 4) for c in losses.columns}
    stats["loss_mean"] = {c: round(float(losses[c].mean()), 4) for c in losses.columns}
    write_json(args.metrics, stats)


if __name__ == "__main__":
    run_stage(main)
