"""proxies: train one small model per mixture of results/mixtures.csv (the RegMix swarm).

Writes data/proxies/<key>.json per proxy (kept across runs: a rerun trains only what is
missing), results/proxies.csv and metrics/proxies.json. Where the proxies run is set by the
environment (REGMIX_BACKEND, REGMIX_WORKERS, REGMIX_RAY_ADDRESS; see regmix/swarm.py).
"""

from __future__ import annotations

from pathlib import Path

from regmix.config import ProxyConfig, from_dict
from regmix.files import load_params, run_stage, write_json
from regmix.swarm import placement_from_env, run_swarm
from regmix.tables import loss_columns, read_csv, write_csv

TOKENS = Path("data/tokens")


def main() -> None:
    params = load_params()
    cfg = from_dict(ProxyConfig, params["proxy"], "proxy.")
    mixtures = read_csv("results/mixtures.csv")
    table, stats = run_swarm(mixtures, cfg, TOKENS, Path("data/proxies"), params["seed"],
                             placement_from_env())
    write_csv("results/proxies.csv", table)
    losses = table[loss_columns(table)]
    # How much the mixture moves each domain's loss: a swarm too small or too short to
    # separate mixtures shows a spread near the seed noise.
    stats["loss_std"] = {c: round(float(losses[c].std()), 4) for c in losses.columns}
    stats["loss_mean"] = {c: round(float(losses[c].mean()), 4) for c in losses.columns}
    write_json("metrics/proxies.json", stats)


if __name__ == "__main__":
    run_stage(main)
