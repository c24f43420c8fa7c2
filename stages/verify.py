"""verify: the compared mixtures' proxies trained again with fresh seeds, after the search and
before any large run (regmix.choose.verify): the choice and `best_proxy` measured without the
selection that flatters their figures, and the choice's gain over `prior` measured beside the
one the search claimed (results/mixture.yaml's `predicted_target` against the regression's
prediction for the prior). Then the compared-mixture files the large runs train from: the search's
compared mixtures, with `regmix` a verified mixture that measured distinguishably lower (`verify.choose`).

Each proxy is stored in the verify folder as it finishes (kept across runs, like the swarm's);
then the table of every proxy's losses and the verdict's metrics. `dvc repro verify` runs it
(and what it needs) without starting the large runs.
"""

from __future__ import annotations

from regmix.choose.decision import decision_text
from regmix.choose.mixture_files import read_all, write_all
from regmix.choose.regression import load_regressor
from regmix.choose.verify import run_verify, verify_seeds
from regmix.choose.verify_text import doubts, verify_text
from regmix.config import ProxyConfig, SampleConfig, VerifyConfig, from_dict
from regmix.data.shards import read_meta
from regmix.files import read_yaml, run_stage, write_json, write_yaml
from regmix.judge import headline
from regmix.progress import say, warn
from regmix.tables import read_csv, write_csv
from regmix.target import run_target
from regmix.train.backends import placement_from_env
from regmix.train.swarm import run_seeds
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        tokens="token shards (prepare)",
        candidates="folder of the search's compared-mixture files (search)",
        choice="the search's mixture file (search): its figure for the choice",
        proxies="proxies table (proxies)",
        replicates="replicates table (proxies)",
        regressor="fitted regressor (fit)",
        store="folder of finished verify proxies (kept across runs)",
        table="table (CSV) of every verify proxy to write",
        record="the check's record (JSON) to write",
        compare="folder of the compared-mixture files the large runs train from, to write",
        answer="the mixture to use (YAML), with how it was decided, to write",
        headline="its headline metrics (JSON) to write",
    )
    cfg = from_dict(VerifyConfig, params["verify"], "verify.")
    domains = read_meta(args.tokens).domains
    target = run_target(params, domains, read_csv(args.proxies))
    names = [n for n in cfg.mixtures if n in params["large"]["mixtures"]]  # only compared ones have a file
    if len(names) < len(cfg.mixtures):
        say(f"verify: not in large.mixtures, not verified: {', '.join(n for n in cfg.mixtures if n not in names)}")
    compared = read_all(args.candidates, params["large"]["mixtures"])
    args.store.mkdir(parents=True, exist_ok=True)  # an output even when nothing trains
    proxy = cfg.scale(from_dict(ProxyConfig, params["proxy"], "proxy."))
    max_epochs = from_dict(SampleConfig, params["sample"], "sample.").max_epochs
    seeds, placement = verify_seeds(cfg.seeds, params["seed"]), placement_from_env()

    def train(mixtures: dict[str, dict[str, float]]):
        return run_seeds(mixtures, proxy, args.tokens, args.store, seeds, target, domains, placement, max_epochs)

    verified = run_verify(
        {name: c.mixture for name, c in compared.items()},
        names,
        train,
        target,
        load_regressor(args.regressor, target, domains),
        read_yaml(args.choice),
        read_csv(args.proxies),
        read_csv(args.replicates),
        cfg.changes(),
        cfg.choose,
    )
    result = verified.record
    write_csv(args.table, verified.table)
    write_json(args.record, result)
    write_json(args.headline, headline.verify(result))
    write_all(args.compare, verified.compared, {name: c.seeds for name, c in compared.items()})
    write_yaml(args.answer, verified.answer)
    say(verify_text(result))
    say(decision_text(result["decision"]))
    for line in doubts(result):
        warn(line)


if __name__ == "__main__":
    run_stage(main)
