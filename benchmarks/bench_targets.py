"""Does the choice hold for every target of the committed run's corpus, not only the demo's?

The measurement behind `search.incumbent`. On the committed swarm (results/proxies.csv and its
replicates, data/tokens, the settings of params.yaml) each target (every domain and `mean`) is
fitted and searched as the pipeline does, then measured as the `verify` stage measures: fresh
seeds for the final choice (`regmix`), the rule's own choice before the incumbent was weighed
(`rule`), `best_proxy` and `prior`. A fresh-seed mean carries none of the selection that picked
its mixture, so the verdicts say which choice is better at the proxy scale.

Printed per target: the incumbent (which proxy, its estimate against the rule's prediction),
`rule` and `best_proxy` minus `regmix` with their verdicts, and regmix's gain over the prior
measured beside predicted. The last line is one JSON object: every row, and the counts of
targets where regmix measured distinguishably worse than the rule's choice or best_proxy, and
where its gain over the prior is real.

    .venv/bin/python -m benchmarks.bench_targets [--targets wikipedia,mean] [--seeds 3] [--store DIR]
    # needs the committed run (`make demo`): about 15 minutes on 2 cores with an empty store
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import add_fresh_seed_arguments
from regmix import api
from regmix.compare import BEST_PROXY, CHOSEN
from regmix.config import LargeConfig, SampleConfig, from_dict
from regmix.files import load_params
from regmix.regression import read_proxies
from regmix.sampling import swarm_generator
from regmix.tables import read_csv, read_domains
from regmix.target import MEAN, Target

RULE = "rule"  # the search rule's choice, before the incumbent is weighed
PRIOR = "prior"
WORSE = "better"  # a compared mixture's verdict against regmix when regmix measured worse


def measure(target: str, params: dict[str, Any], seeds: int, store: Path) -> dict[str, Any]:
    """Fit, search and verify one target of the committed run: the printed row."""
    swarm, again = read_csv("results/proxies.csv"), read_csv("results/proxy_replicates.csv")
    fitted = api.fit(swarm, target, params["regression"], params["seed"], replicates=again)
    choice = api.search(fitted.regressor, read_domains("results/domains.json"), params["sample"], params["search"],
                        params["seed"], large_cfg=params["large"], proxies=swarm)
    result = choice.result
    rule = result.replaced if result.replaced is not None else result.chosen
    gen = swarm_generator(from_dict(SampleConfig, params["sample"], "sample."),
                          from_dict(LargeConfig, params["large"], "large."), read_domains("results/domains.json"))
    _, best = read_proxies("results/proxies.csv").best(Target.parse(target))
    mixtures = {CHOSEN: choice.mixture, RULE: dict(zip(result.domains, map(float, rule))), BEST_PROXY: best,
                PRIOR: dict(zip(gen.domains, map(float, gen.prior)))}
    checked = api.verify(mixtures, "data/tokens", target, params["proxy"], seeds, params["seed"], store,
                         regressor=fitted.regressor, proxies=swarm, replicates=again)
    checked.pop("table")
    return {"target": target, "incumbent": result.incumbent, "verify": checked}


def line(row: dict[str, Any]) -> str:
    inc, v = row["incumbent"] or {}, row["verify"]
    m, gain = v["mixtures"], v["over_prior"]
    took = (f"proxy {inc['proxy']} {inc['estimate']:.4f} vs {inc['versus_predicted']:.4f}: "
            f"{'chosen' if inc['chosen'] else 'kept the rule'}") if "proxy" in inc else "not weighed"
    diff = "; ".join(f"{n} {m[n]['vs_regmix']['difference']:+.3f} ({m[n]['vs_regmix']['verdict']})"
                     for n in (RULE, BEST_PROXY))
    return (f"{row['target']:16s} incumbent {took} | regmix {m[CHOSEN]['measured']:.3f} | {diff} | gain over prior "
            f"{gain['measured']:.3f} [{gain['ci95'][0]:.3f}, {gain['ci95'][1]:.3f}] ({gain['verdict']}), "
            f"predicted {gain['predicted']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="all", help="comma list of targets (default: every domain and mean)")
    add_fresh_seed_arguments(parser, "bench_targets", seeds=3)
    args = parser.parse_args()
    params = load_params("params.yaml")
    names = [*read_domains("results/domains.json"), MEAN] if args.targets == "all" else args.targets.split(",")
    rows = []
    for target in names:
        rows.append(measure(target, params, args.seeds, Path(args.store)))
        print(line(rows[-1]), flush=True)
    verdicts = [{n: row["verify"]["mixtures"][n]["vs_regmix"]["verdict"] for n in (RULE, BEST_PROXY)} for row in rows]
    print(json.dumps({
        "targets": len(rows),
        "incumbent_chosen": sum(bool((row["incumbent"] or {}).get("chosen")) for row in rows),
        "regmix_worse_than_rule": sum(v[RULE] == WORSE for v in verdicts),
        "regmix_worse_than_best_proxy": sum(v[BEST_PROXY] == WORSE for v in verdicts),
        "gain_over_prior_real": sum(row["verify"]["over_prior"]["verdict"] == "real" for row in rows),
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
