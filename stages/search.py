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
from regmix.choose.mixture_files import resolve, seeds_of, write_all
from regmix.config import LargeConfig, SampleConfig, SearchConfig, from_dict
from regmix.files import run_stage, write_yaml
from regmix.mixtures import baseline_mixtures
from regmix.choose.sampling import swarm_generator
from regmix.choose.regression import load_regressor, read_proxies
from regmix.choose.decision import decision_text
from regmix.progress import warn
from regmix.choose.search import plot_choice, search, summary
from regmix.tables import mixture_frame, read_csv, read_domains, write_csv
from regmix.target import run_target
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards (prepare): the cheap baselines read the text",
                             regressor="fitted regressor (fit)", domains="domains table (prepare)",
                             swarm="swarm table (sample)", proxies="proxies table (proxies)",
                             chosen="chosen mixture (YAML) to write",
                             top="top-k table (CSV) to write", plot="weights plot (PNG) to write",
                             candidates="folder of compared-mixture files to write")
    cfg = from_dict(SearchConfig, params["search"], "search.")
    domains = read_domains(args.domains)
    # the proxy swarm's generator: the same prior, caps and grid
    gen = swarm_generator(from_dict(SampleConfig, params["sample"], "sample."),
                          from_dict(LargeConfig, params["large"], "large."), domains)
    human = params.get("human_mixtures")
    prior = dict(zip(gen.domains, gen.prior))  # the token share, or sample.prior: one `prior` everywhere
    baselines = baseline_mixtures(prior, human)
    target = run_target(params, gen.domains, read_csv(args.proxies))
    model = load_regressor(args.regressor, target, gen.domains)
    model.compile()  # machine code from this machine's cache, built on a miss
    proxies = read_proxies(args.proxies)
    trained = proxies.aligned(gen.domains)  # columns in the generator's domain order
    result = search(model, gen, cfg, params["seed"], threads=runtime.threads(), proxies=trained, proxy_ids=proxies.ids)

    out = summary(result, model, baselines, trained, proxies.ids)
    write_yaml(args.chosen, out)
    shown = min(cfg.top_k, len(result.top.pred))  # the first top_k averaged, in the rule's order
    top = mixture_frame(range(shown), gen.domains, result.top.W[:shown])
    top.insert(1, "predicted_target", result.top.pred[:shown])
    if result.score is not None and result.rule == "lower_confidence":
        top.insert(2, "score", result.score[:shown])
    write_csv(args.top, top)
    plot_choice(args.plot, result, baselines)
    large = params["large"]
    cheap = cheap_baselines(large["mixtures"], args.tokens, target, gen)
    compared = resolve(large["mixtures"], out["train"], proxies.ranked(target), prior, read_csv(args.swarm), human, params["seed"],
                       cheap)
    write_all(args.candidates, compared, seeds_of(large["mixtures"], large["seeds"], large["replicate"], params["seed"]))
    best = min(out["baselines"].items(), key=lambda kv: kv[1]["predicted_target"])
    ev = out["evidence"]
    where = f"; L1 {ev['nearest_l1']:.3f} to the nearest proxy" if "nearest_l1" in ev else ""
    if "proxy_spacing_l1" in ev:
        where += f" (their median spacing {ev['proxy_spacing_l1']['median']:.3f})"
    if "member_std" in ev:
        where += f", members' std there {ev['member_std']:.4f}"
    print(
        f"chosen mixture ({cfg.rule}, {result.averaged} averaged, predicted): {out['predicted_target']:.4f} "
        f"(best baseline {best[0]}: {best[1]['predicted_target']:.4f}){where} -> {args.chosen}"
    )
    print(decision_text(out["decision"]))
    for s in out["decision"]["steps"]:
        if s.get("proposed"):
            warn(f"{s['step']} proposes `{s['proposed']}` in the regression's choice's place: verify's fresh seeds "
                 "decide (it replaces the choice only if measured distinguishably lower)")


if __name__ == "__main__":
    run_stage(main)
