"""search: the regressor's best mixture, its top-k and plot, and every compared mixture's file.

Each name in `large.mixtures` gets its own small file (regmix.compare), so a train item that
depends on it reruns only when its own mixture changed.
"""

from regmix import runtime
from regmix.compare import resolve, seeds_of, write_all
from regmix.config import SampleConfig, SearchConfig, from_dict
from regmix.files import run_stage, write_yaml
from regmix.mixtures import baseline_mixtures
from regmix.sampling import make_generator
from regmix.regression import load_regressor, read_proxies
from regmix.search import plot_choice, search, summary
from regmix.tables import mixture_frame, read_csv, read_domains, token_prior, write_csv
from regmix.target import Target
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, regressor="fitted regressor (fit)", domains="domains table (prepare)",
                             swarm="swarm table (sample)", proxies="proxies table (proxies)",
                             chosen="chosen mixture (YAML) to write",
                             top="top-k table (CSV) to write", plot="weights plot (PNG) to write",
                             compare="folder of compared-mixture files to write")
    cfg = from_dict(SearchConfig, params["search"], "search.")
    sample = from_dict(SampleConfig, params["sample"], "sample.")
    share = token_prior(read_domains(args.domains))
    gen = make_generator(sample, share)  # the same generator, caps and grid as the proxy swarm
    human = params.get("human_mixtures")
    baselines = baseline_mixtures(dict(zip(gen.domains, gen.prior)), human)
    target = Target.parse(params["target"])
    model = load_regressor(args.regressor, target, gen.domains)
    model.compile()  # machine code from this machine's cache, built on a miss
    result = search(model, gen, cfg, params["seed"], threads=runtime.threads())

    out = summary(result, model, baselines)
    write_yaml(args.chosen, out)
    top = mixture_frame(range(len(result.top.pred)), gen.domains, result.top.W)
    top.insert(1, "predicted_target", result.top.pred)
    write_csv(args.top, top)
    plot_choice(args.plot, result, baselines)
    large = params["large"]
    _, best_proxy = read_proxies(args.proxies).best(target)
    compared = resolve(large["mixtures"], out["train"], best_proxy, share, read_csv(args.swarm), human, params["seed"])
    write_all(args.compare, compared, seeds_of(large["mixtures"], large["seeds"], large["replicate"], params["seed"]))
    best = min(out["baselines"].items(), key=lambda kv: kv[1]["predicted_target"])
    print(
        f"chosen mixture predicts {out['predicted_target']:.4f} (best baseline {best[0]}: "
        f"{best[1]['predicted_target']:.4f}) -> {args.chosen}"
    )


if __name__ == "__main__":
    run_stage(main)
