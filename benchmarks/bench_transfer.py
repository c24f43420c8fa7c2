"""Do the proxies order mixtures as the large runs do? Rank transfer, measured on the committed run.

RegMix rests on rank invariance: a mixture better for a tiny proxy is better for the large
model. The committed run has large runs of several distinct mixtures (`large.mixtures`; one on
another's runs counts once), each scored on every domain (results/evaluation.json; the mean over
its large seeds, often one: the large runs' own noise is not in these figures). Each of them
is trained again as a proxy with fresh seeds at every budget in --steps (default: the proxy's
own optim.steps and 4x), and for every target (each domain and `mean`):

- Spearman between the proxies' mean loss and the large runs' mean loss over the mixtures,
  with a bootstrap 95% interval and n;
- regret at the large scale: the large loss of the mixture the proxies rank first minus the
  best large loss (nats; 0 when the proxies pick the large runs' best).

Per budget, the means over targets (a target whose losses tie on one side has no Spearman and
is left out of that mean) and the proxies' seed noise on `mean`. A budget whose order
matches the large runs' is one to trust for this corpus and model; `verify.optim` at that
budget (the transfer check) asks the same of the choice before its large runs.

The last line is one JSON object: {"mixtures": [...], "budgets": {"<steps>": {"spearman": mean,
"regret": mean, "seed_noise": {...}, "targets": {target: {"spearman", "ci95", "n", "regret",
"proxy_pick", "large_best"}}}}}; `--out` writes it too. `make bench-transfer` (32, 128 and 512
steps, 4 seeds) wrote benchmarks/results/large_targets/wikipedia/transfer.json for the demo's run while its
target was `wikipedia`, whose figures docs/benchmarks.md states.

    .venv/bin/python -m benchmarks.bench_transfer [--steps 128,512] [--seeds 2] [--store DIR] [--out FILE]
    # needs the committed run (`make demo`): data/tokens, results/compare, results/evaluation.json;
    # about 7 minutes on 2 cores for the demo's 6 mixtures with an empty store (make bench-transfer: 20)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from benchmarks import add_fresh_seed_arguments
from regmix.choose.mixture_files import read_all
from regmix.choose.verify import verify_seeds
from regmix.config import ProxyConfig, SampleConfig, VerifyConfig, from_dict
from regmix.data.shards import read_meta
from regmix.files import load_params, no_nan, write_json
from regmix.statistics import pooled_noise, spearman_interval
from regmix.tables import domain_losses
from regmix.target import MEAN, Target
from regmix.train.backends import placement_from_env
from regmix.train.swarm import run_seeds

TOKENS, COMPARE, EVALUATION = "data/tokens", "results/compare", "results/evaluation.json"
# the demo's run while its target was `wikipedia` (its records beside it), written by `make bench-transfer`
COMMITTED = "benchmarks/results/large_targets/wikipedia/transfer.json"


def large_losses(evaluation: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{mixture: {domain: loss}} of the evaluated large runs, one entry per distinct set of runs."""
    return {name: e["domain_loss"] for name, e in evaluation.items() if "domain_loss" in e and not e.get("runs_of")}


def _scores(losses: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """{name: {domain: loss}} as score records ({name: {"loss.<domain>": loss}})."""
    return {n: {f"loss.{d}": v for d, v in by_domain.items()} for n, by_domain in losses.items()}


def transfer(
    proxy: Mapping[str, Mapping[str, float]], large: Mapping[str, Mapping[str, float]], target: Target
) -> dict[str, Any]:
    """One target's agreement between the proxies' and the large runs' losses of the same mixtures."""
    names = list(large)
    x = np.array([target.by_name(_scores(proxy), "the proxies' losses")[n] for n in names])
    y = np.array([target.by_name(_scores(large), "the large runs' losses")[n] for n in names])
    rho, low, high, n = spearman_interval(x, y)
    pick, best = names[int(np.argmin(x))], names[int(np.argmin(y))]
    return {
        "spearman": rho,
        "ci95": [low, high],
        "n": n,
        "regret": float(y[names.index(pick)] - y.min()),
        "proxy_pick": pick,
        "large_best": best,
    }


def measure(
    steps: int,
    mixtures: Mapping[str, Mapping[str, float]],
    large: Mapping[str, Mapping[str, float]],
    params: Mapping[str, Any],
    seeds: int,
    store: Path,
) -> dict[str, Any]:
    """Every target's transfer at one proxy budget (optim.steps)."""
    proxy = from_dict(ProxyConfig, params["proxy"], "proxy.")
    cfg = VerifyConfig(optim={} if steps == proxy.optim.steps else {"steps": steps}).scale(proxy)
    domains = read_meta(TOKENS).domains
    table = run_seeds(
        mixtures,
        cfg,
        TOKENS,
        store,
        verify_seeds(seeds, params["seed"]),
        Target.parse(MEAN),
        domains,
        placement_from_env(),
        from_dict(SampleConfig, params["sample"], "sample.").max_epochs,
    )
    losses = domain_losses(table).assign(mixture=table["mixture"].to_numpy())
    proxy_losses = losses.groupby("mixture", sort=False).mean().to_dict(orient="index")
    targets = {t: transfer(proxy_losses, large, Target.parse(t, domains=domains)) for t in [*domains, MEAN]}
    noise = pooled_noise(table.groupby("mixture", sort=False)["target"].apply(list).to_dict())
    return {
        "spearman": float(np.nanmean([t["spearman"] for t in targets.values()])),
        "regret": float(np.mean([t["regret"] for t in targets.values()])),
        "seed_noise": {"target": MEAN, "std": noise.std, "df": noise.df},
        "targets": targets,
    }


def lines(steps: int, result: Mapping[str, Any]) -> list[str]:
    noise = result["seed_noise"]
    out = [
        f"optim.steps {steps}: mean Spearman {result['spearman']:.3f}, mean regret {result['regret']:.3f} nats "
        f"(seed noise on mean {noise['std']:.3f}, {noise['df']} df)"
    ]
    for name, t in result["targets"].items():
        out.append(
            f"  {name:16s} Spearman {t['spearman']:.2f} [{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}] n={t['n']}  "
            f"proxies pick {t['proxy_pick']}, large best {t['large_best']}, regret {t['regret']:.3f}"
        )
    return out


def docs_sentences(result: Mapping[str, Any], target: str, run: str = "the committed demo run") -> str:
    """What docs/benchmarks.md says of a result (its last JSON line); a test checks the page against the committed one."""
    budgets = result["budgets"]
    per_budget = []
    for steps, b in budgets.items():
        picked = sum(t["proxy_pick"] == t["large_best"] for t in b["targets"].values())
        per_budget.append(
            f"at {steps} steps the mean Spearman is {b['spearman']:.3f} and the proxies pick the large "
            f"runs' best on {picked} of {len(b['targets'])} targets"
        )
    ours = [
        f"{b['targets'][target]['spearman']:.2f} [{b['targets'][target]['ci95'][0]:.2f}, "
        f"{b['targets'][target]['ci95'][1]:.2f}] at {steps} steps"
        for steps, b in budgets.items()
    ]
    return (
        f"On {run} ({len(result['mixtures'])} distinct mixtures, {result['seeds']} fresh seeds "
        f"each): {'; '.join(per_budget)}. For its target `{target}`: {', '.join(ours)}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="", help="comma list of proxy budgets (optim.steps; default: x1 and x4)")
    add_fresh_seed_arguments(parser, "bench_transfer", seeds=2)
    parser.add_argument(
        "--out", type=Path, help=f"also write the JSON here (docs/benchmarks.md's figures come from {COMMITTED})"
    )
    args = parser.parse_args()
    params = load_params("params.yaml")
    own = int(params["proxy"]["optim"]["steps"])
    budgets = [int(s) for s in args.steps.split(",")] if args.steps else [own, 4 * own]
    large = large_losses(json.loads(Path(EVALUATION).read_text()))
    if len(large) < 3:
        raise SystemExit(f"{EVALUATION} has {len(large)} distinct evaluated mixtures: a rank needs at least 3")
    mixtures = {name: c.mixture for name, c in read_all(COMPARE, list(large)).items()}
    results = {}
    for steps in budgets:
        results[str(steps)] = measure(steps, mixtures, large, params, args.seeds, Path(args.store))
        print("\n".join(lines(steps, results[str(steps)])), flush=True)
    result = no_nan({"mixtures": list(large), "seeds": args.seeds, "budgets": results})
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
