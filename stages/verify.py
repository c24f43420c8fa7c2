"""verify: the compared mixtures' proxies trained again with fresh seeds, after the search and
before any large run (regmix.choose.verify): the choice and `best_proxy` measured without the
selection that flatters their figures, and the choice's gain over `prior` measured beside the
one the search claimed (results/mixture.yaml's `predicted_target` against the regression's
prediction for the prior). Then the compared-mixture files the large runs train from: the search's
candidates, with `regmix` the verified mixture that measured lowest (`verify.choose`).

Each proxy is stored in the verify folder as it finishes (kept across runs, like the swarm's);
then the table of every proxy's losses and the verdict's metrics. `dvc repro verify` runs it
(and what it needs) without starting the large runs.
"""

from __future__ import annotations

from regmix.choose.mixture_files import BEST_PROXY, CHOSEN, read_all, write_all
from regmix.config import ProxyConfig, SampleConfig, VerifyConfig, from_dict
from regmix.data.shards import read_meta
from regmix.judge import headline
from regmix.files import read_yaml, run_stage, write_json, write_yaml
from regmix.choose.noise import target_pairs
from regmix.progress import say, warn
from regmix.choose.regression import load_regressor, predict_mixtures, read_proxies
from regmix.train.swarm import placement_from_env, run_seeds
from regmix.tables import read_csv, write_csv
from regmix.target import run_target
from regmix.choose.decision import answer, decision_text, record
from regmix.choose.verify import (doubts, judge, measured_targets, proposed_mixtures, trained, verified_step, verify_seeds,
                           verify_text)
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards (prepare)",
                             candidates="folder of the search's compared-mixture files (search)",
                             choice="the search's mixture file (search): its figure for the choice",
                             proxies="proxies table (proxies)", replicates="replicates table (proxies)",
                             regressor="fitted regressor (fit)",
                             store="folder of finished verify proxies (kept across runs)",
                             table="table (CSV) of every verify proxy to write", record="the check's record (JSON) to write",
                             compare="folder of the compared-mixture files the large runs train from, to write",
                             answer="the mixture to use (YAML), with how it was decided, to write",
                             headline="its headline metrics (JSON) to write")
    cfg = from_dict(VerifyConfig, params["verify"], "verify.")
    domains = read_meta(args.tokens).domains
    target = run_target(params, domains, read_csv(args.proxies))
    names = [n for n in cfg.mixtures if n in params["large"]["mixtures"]]  # only compared ones have a file
    if len(names) < len(cfg.mixtures):
        say(f"verify: not in large.mixtures, not verified: {', '.join(n for n in cfg.mixtures if n not in names)}")
    candidates = read_all(args.candidates, params["large"]["mixtures"])
    mixtures = {name: candidates[name].mixture for name in names}
    choice = read_yaml(args.choice)
    if CHOSEN in mixtures:  # a step's proposal is measured beside the choice (unless it is a verified mixture already)
        mixtures.update(proposed_mixtures(choice, mixtures))
    args.store.mkdir(parents=True, exist_ok=True)  # an output even when nothing trains
    table = run_seeds(mixtures, cfg.scale(from_dict(ProxyConfig, params["proxy"], "proxy.")), args.tokens,
                      args.store, verify_seeds(cfg.seeds, params["seed"]), target, domains, placement_from_env(),
                      from_dict(SampleConfig, params["sample"], "sample.").max_epochs)
    swarm_loss, pairs = {}, {}
    if cfg.at_proxy_scale:  # the swarm's loss and seed noise are measures of the proxies' own scale
        swarm_loss = {BEST_PROXY: float(read_proxies(args.proxies).target_values(target).min())}  # what chose it
        pairs = target_pairs(read_csv(args.proxies), read_csv(args.replicates), target)
    predicted = predict_mixtures(load_regressor(args.regressor, target, domains), mixtures)
    result = judge(measured_targets(table), pairs, predicted, swarm_loss, cfg.changes(), cfg.choose)
    steps = [*choice.get("decision", {}).get("steps", []), verified_step(result, mixtures, predicted, cfg.choose)]
    result["decision"] = record(steps)
    write_csv(args.table, table)
    write_json(args.record, result)
    write_json(args.headline, headline.verify(result))
    final = trained({name: c.mixture for name, c in candidates.items()}, result, mixtures)
    write_all(args.compare, final, {name: c.seeds for name, c in candidates.items()})
    write_yaml(args.answer, answer(final.get(CHOSEN), choice, result["decision"]))
    say(verify_text(result))
    say(decision_text(result["decision"]))
    for line in doubts(result):
        warn(line)


if __name__ == "__main__":
    run_stage(main)
