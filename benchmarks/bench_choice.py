"""Replay each search rule on RegMix's released swarm, where the true losses of the candidates are known.

The measurement behind `search.rule`'s default. RegMix released 512 training and 256 test
proxies (1M parameters, 1B tokens each, Pile domains; target pile_cc). For each training-set
size (64 and 128 random training proxies: the demo's regime; all 512: the paper's) and seed,
the `regression` section of params.yaml (with its bootstrap members) is fitted on the training
proxies, and every rule chooses among the 256 test proxies instead of simulated mixtures, with
`regmix.choose.rules.select`, the search's own code. A rule that averages several mixtures picks the
test proxy nearest (L1) to its average. Regret = the picked proxy's true loss - the best true
test loss (nats; lower is better). Over seeds: the mean regret, its standard error, and the
paired difference to `top_k` (same fits, same pool) with its standard error.

`top_k` averages the best top_k of 1M simulated mixtures (0.01%); at a pool of 256 that is the
single best (k = 1), which is what the replay uses for `top_k`, `lower_confidence` and
`trust_region` (and for `band`'s sigma); k = 4 and 16 show what averaging more does. The search
scores only the base's best `candidates` (10k of 1M) with the members and the trust rule; the
replay shows `lower_confidence` both on the whole pool and on the same fraction of it
(`best 1%`: the base's best 3). Random is the expected regret of a uniformly random test
proxy, for scale.

With `--simulate N` (default 200k; 0 skips), each rule (at its params.yaml settings) also runs
the real search on N simulated Pile mixtures with the regressor fitted on all 512 proxies
(compiled with lleaves, cached) and reports where its choice lands: the L1 to the nearest
training proxy over the proxies' median nearest-neighbour spacing, and the bootstrap members'
std there (no true loss: descriptive).

`--target` replays on another of the released validation losses (or `mean`): the same swarm, another
regression problem, to check that a rule's advantage is not one target's accident.

    .venv/bin/python -m benchmarks.bench_choice [--seeds 20] [--seeds-full 10] [--sizes 64,128,512]
                                                [--simulate 200000] [--target pile_cc]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import time

# LightGBM's OpenMP threads spin while waiting: on a busy machine that made each fit ~8x slower.
# Passive waiting changes the speed only (fits are deterministic); set before LightGBM loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from scipy.stats import spearmanr

from benchmarks import add_released_argument, released_swarm
from regmix import runtime
from regmix.choose.choice import evidence
from regmix.choose.regression import fit_regressor
from regmix.choose.rules import RULES, l1_nearest, select
from regmix.choose.sampling import pile_generator
from regmix.choose.search import search
from regmix.config import RegressionConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import load_params
from regmix.target import Target

TARGET = "pile_cc"  # the paper's target; --target checks a rule on another


def variants(default: SearchConfig) -> dict[str, SearchConfig]:
    """The rules replayed, each as the search config it runs with (pool-sized k = 1 unless named).

    `candidates` counts as the same fraction of the pool as of the simulated mixtures: the
    variants marked `best 1%` (params.yaml's 10k of 1M) choose among the base's best 3 test
    proxies, the others among all 256 (the trust rule only there: among 3, often none is eligible,
    where the search's 10k leave thousands)."""
    one = dataclasses.replace(default, top_k=1)
    whole = dataclasses.replace(one, candidates=default.n_simulations)
    frac = f"best {100 * default.candidates / default.n_simulations:g}%"
    out = {"top_k (k=1)": dataclasses.replace(one, rule="top_k")}
    for k in (4, 16):
        out[f"top_k (k={k})"] = dataclasses.replace(default, rule="top_k", top_k=k)
    for kappa in (0.0, 0.5, 1.0, 2.0):
        out[f"lower_confidence (kappa={kappa:g})"] = dataclasses.replace(whole, rule="lower_confidence", kappa=kappa)
    for kappa in (0.0, 1.0):
        out[f"lower_confidence (kappa={kappa:g}, {frac})"] = dataclasses.replace(
            one, rule="lower_confidence", kappa=kappa
        )
    for radius in (0.5, 1.0, 2.0):
        out[f"trust_region (radius={radius:g})"] = dataclasses.replace(whole, rule="trust_region", trust_radius=radius)
    for band in (0.25, 0.5, 1.0, 2.0):
        out[f"band (band={band:g})"] = dataclasses.replace(whole, rule="band", band=band)
    return out


def replay(
    rules: dict[str, SearchConfig],
    W_train: np.ndarray,
    y_train: np.ndarray,
    domains: list[str],
    pool: np.ndarray,
    truth: np.ndarray,
    reg: RegressionConfig,
    seed: int,
    target: Target,
) -> dict[str, dict]:
    """Fit on the training rows, let every rule pick one pool row; its regret and where it stands."""
    with contextlib.redirect_stderr(io.StringIO()):  # the bootstrap's progress bar, once per fit
        fitted = fit_regressor(W_train, y_train, domains, target, reg, seed)
    pred = fitted.predict(pool)
    members = np.array([m.predict(pool) for m in fitted.members]) if fitted.members else None
    out = {}
    by_pred = np.argsort(pred, kind="stable")
    for name, cfg in rules.items():
        n = len(pool)  # top_k and band see the whole pool; the others the base's best, as in the search
        if cfg.rule not in ("top_k", "band"):
            n = min(n, max(cfg.top_k, -(-len(pool) * cfg.candidates // cfg.n_simulations)))
        cand = by_pred[:n]
        sel = select(cfg, pool[cand], pred[cand], None if members is None else members[:, cand], W_train)
        rows = cand[sel.rows]
        pick = int(rows[0]) if len(rows) == 1 else int(l1_nearest(pool[rows].mean(axis=0)[None, :], pool)[1][0, 0])
        out[name] = {
            "regret": float(truth[pick] - truth.min()),
            "averaged": len(rows),
            "nearest_l1": float(l1_nearest(pool[pick][None, :], W_train)[0][0, 0]),
        }
    out["random"] = {"regret": float(truth.mean() - truth.min()), "averaged": len(pool), "nearest_l1": float("nan")}
    out["_fit"] = {
        "spearman": float(spearmanr(pred, truth)[0]),
        "member_std": float(np.median(members.std(axis=0))) if members is not None else float("nan"),
    }
    return out


def stats(values: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(values.mean()), se


def simulate(
    rules: dict[str, SearchConfig],
    W: np.ndarray,
    y: np.ndarray,
    domains: list[str],
    reg: RegressionConfig,
    params: dict,
    n: int,
    target: Target,
) -> list[dict]:
    """Each default-setting rule on `n` simulated Pile mixtures: where its choice lands."""
    with contextlib.redirect_stderr(io.StringIO()):
        fitted = fit_regressor(W, y, domains, target, reg, seed=0)
    fitted.compile()
    # RegMix's swarm: its prior and caps (1.5 epochs of its 25B-token large run: 15x the share)
    gen = pile_generator(dataclasses.replace(from_dict(SampleConfig, params["sample"], "sample."), max_epochs=1.5))
    P = W[:, [domains.index(d) for d in gen.domains]]
    cols = [gen.domains.index(d) for d in domains]
    rows = []
    for rule, cfg in rules.items():
        cfg = dataclasses.replace(cfg, n_simulations=n, spread_simulations=min(n, cfg.chunk_size))
        start = time.perf_counter()
        result = search(fitted, gen, cfg, seed=0, threads=runtime.threads(), proxies=P)
        seconds = time.perf_counter() - start
        ev = evidence(result, fitted, P)
        rows.append(
            {
                "rule": rule,
                "averaged": result.averaged,
                "seconds": round(seconds, 2),
                "predicted": float(fitted.predict(result.chosen[cols][None])[0]),
                "nearest_l1": ev["nearest_l1"],
                "nearest_over_spacing": ev["nearest_over_spacing"],
                "member_std": ev["member_std"],
                "member_std_at_proxies_median": ev["member_std_at_proxies_median"],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_released_argument(parser)
    parser.add_argument("--sizes", default="64,128,512", help="training-set sizes (512: all, fit seed varies)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds (random training subsets) per smaller size")
    parser.add_argument("--seeds-full", type=int, default=10, help="fit seeds on all 512 training proxies")
    parser.add_argument("--target", default=TARGET, help="the regression target: a released loss domain, or mean")
    parser.add_argument("--simulate", type=int, default=200_000, help="simulated mixtures per rule (0: skip)")
    args = parser.parse_args()

    params = load_params()
    train, test = released_swarm(args.released)
    domains = train.domains
    target = Target.parse(args.target)
    W, y = train.weights, train.target_values(target)
    pool, truth = test.aligned(domains), test.target_values(target)
    reg = from_dict(RegressionConfig, params["regression"], "regression.")
    default = from_dict(SearchConfig, params["search"], "search.")
    rules = variants(default)
    sizes = [int(s) for s in args.sizes.split(",")]

    table: list[dict] = []
    fits: dict[int, dict] = {}
    start = time.perf_counter()
    for size in sizes:
        runs = []
        for seed in range(args.seeds_full if size >= len(y) else args.seeds):
            rng = np.random.default_rng([size, seed])
            rows = np.arange(len(y)) if size >= len(y) else np.sort(rng.choice(len(y), size, replace=False))
            runs.append(replay(rules, W[rows], y[rows], domains, pool, truth, reg, seed, target))
        fits[size] = {k: round(stats(np.array([r["_fit"][k] for r in runs]))[0], 4) for k in ("spearman", "member_std")}
        ref = np.array([r["top_k (k=1)"]["regret"] for r in runs])
        for name in [*rules, "random"]:
            regret = np.array([r[name]["regret"] for r in runs])
            mean, se = stats(regret)
            diff, diff_se = stats(regret - ref)
            table.append(
                {
                    "n_train": min(size, len(y)),
                    "rule": name,
                    "seeds": len(runs),
                    "mean_regret": round(mean, 5),
                    "se": round(se, 5),
                    "diff_vs_top_k": round(diff, 5),
                    "diff_se": round(diff_se, 5),
                    "averaged": round(float(np.mean([r[name]["averaged"] for r in runs])), 1),
                    "nearest_l1": round(float(np.mean([r[name]["nearest_l1"] for r in runs])), 4),
                }
            )
    replay_s = round(time.perf_counter() - start, 1)

    print(
        f"Replay on RegMix's released swarm: {len(pool)} test proxies as the candidate pool, target {target.name}; "
        f"regret in nats (best test loss {truth.min():.4f}, spread of the pool {truth.std():.4f} std)"
    )
    print(
        f"{'n_train':>7} {'rule':<40} {'seeds':>5} {'regret':>8} {'± se':>7} {'vs top_k':>9} {'± se':>7} "
        f"{'avg':>6} {'L1 near':>7}"
    )
    for row in table:
        print(
            f"{row['n_train']:>7} {row['rule']:<40} {row['seeds']:>5} {row['mean_regret']:>8.4f} {row['se']:>7.4f} "
            f"{row['diff_vs_top_k']:>+9.4f} {row['diff_se']:>7.4f} {row['averaged']:>6} {row['nearest_l1']:>7.3f}"
        )
    for size, fit in fits.items():
        print(
            f"n_train {min(size, len(y))}: pool Spearman {fit['spearman']:.4f}, "
            f"members' median std {fit['member_std']:.4f}"
        )

    simulated = []
    if args.simulate > 0:
        defaults = {r: dataclasses.replace(default, rule=r) for r in RULES}
        simulated = simulate(defaults, W, y, domains, reg, params, args.simulate, target)
        print(
            f"\nSearch on {args.simulate:,} simulated Pile mixtures, regressor on all {len(y)} proxies, "
            f"rules at their params.yaml settings:"
        )
        print(
            f"{'rule':<18} {'averaged':>8} {'predicted':>9} {'L1 near':>7} {'/spacing':>8} {'member std':>10} "
            f"{'at proxies':>10} {'s':>6}"
        )
        for row in simulated:
            print(
                f"{row['rule']:<18} {row['averaged']:>8} {row['predicted']:>9.4f} {row['nearest_l1']:>7.3f} "
                f"{row['nearest_over_spacing']:>8.2f} {row['member_std']:>10.4f} "
                f"{row['member_std_at_proxies_median']:>10.4f} {row['seconds']:>6}"
            )

    print(
        json.dumps(
            {
                "bench": "choice",
                "pool": len(pool),
                "target": target.name,
                "model": reg.model,
                "members": reg.n_bootstrap,
                "replay_seconds": replay_s,
                "fits": fits,
                "replay": table,
                "simulated": simulated,
            }
        )
    )


if __name__ == "__main__":
    main()
