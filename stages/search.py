"""search: the regressor's chosen mixture (by search.rule), its evidence, the averaged mixtures and
plot, and every compared mixture's file (the candidates `verify` measures and decides among).

The cheap baselines (`target_only`, `nearest`: regmix.choose.baselines) are made here from the target
and the token data, without proxies.

The trained proxies (results/proxies.csv) are where the regression has evidence: the chosen
mixture's L1 distance to the nearest of them is reported, and `trust_region` chooses within reach
of them.

Each name in `large.mixtures` gets its own small file (regmix.choose.mixture_files), so a train item that
depends on it reruns only when its own mixture changed.
"""

from regmix import runtime
from regmix.choose.baselines import cheap_baselines
from regmix.choose.choice import choice_text, plot_choice, run_search, top_table
from regmix.choose.decision import decision_text
from regmix.choose.mixture_files import resolve, seeds_of, write_all
from regmix.choose.regression import load_regressor, read_proxies
from regmix.choose.sampling import swarm_generator
from regmix.config import LargeConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import run_stage, write_yaml
from regmix.progress import warn
from regmix.tables import read_csv, read_domains, write_csv
from regmix.target import run_target
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        tokens="token shards (prepare): the cheap baselines read the text",
        regressor="fitted regressor (fit)",
        domains="domains table (prepare)",
        swarm="swarm table (sample)",
        proxies="proxies table (proxies)",
        chosen="chosen mixture (YAML) to write",
        top="top-k table (CSV) to write",
        plot="weights plot (PNG) to write",
        candidates="folder of compared-mixture files to write",
    )
    cfg = from_dict(SearchConfig, params["search"], "search.")
    domains = read_domains(args.domains)
    # the proxy swarm's generator: the same prior, caps and grid
    large = from_dict(LargeConfig, params["large"], "large.")
    gen = swarm_generator(from_dict(SampleConfig, params["sample"], "sample."), large, domains)
    human = params.get("human_mixtures")
    prior = dict(zip(gen.domains, gen.prior))  # the token share, or sample.prior: one `prior` everywhere
    target = run_target(params, gen.domains, read_csv(args.proxies))
    model = load_regressor(args.regressor, target, gen.domains)
    proxies = read_proxies(args.proxies)
    choice = run_search(model, gen, cfg, params["seed"], runtime.threads(), proxies, human)

    out = choice.summary
    write_yaml(args.chosen, out)
    write_csv(args.top, top_table(choice.result, cfg.top_k))
    plot_choice(args.plot, choice.result, choice.baselines)
    cheap = cheap_baselines(large.mixtures, args.tokens, target, gen)
    compared = resolve(
        large.mixtures,
        out["train"],
        proxies.ranked(target),
        prior,
        read_csv(args.swarm),
        human,
        params["seed"],
        cheap,
    )
    seeds = seeds_of(large.mixtures, large.seeds, large.replicate, params["seed"])
    write_all(args.candidates, compared, seeds)
    print(f"{choice_text(choice)} -> {args.chosen}")
    print(decision_text(out["decision"]))
    for s in out["decision"]["steps"]:
        if s.get("proposed"):
            warn(
                f"{s['step']} proposes `{s['proposed']}` in the regression's choice's place: verify's fresh seeds "
                "decide (it replaces the choice only if measured distinguishably lower)"
            )


if __name__ == "__main__":
    run_stage(main)
