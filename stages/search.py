"""Search: the regressor's best mixture -> results/mixture.yaml, results/search_topk.csv, plots/search/."""

from regmix.config import SampleConfig, SearchConfig, from_dict
from regmix import runtime
from regmix.files import load_params, run_stage, write_yaml
from regmix.mixtures import baseline_mixtures, make_generator
from regmix.regression import load_regressor
from regmix.search import plot_choice, search, summary
from regmix.tables import mixture_frame, read_domains, token_prior, write_csv
from regmix.target import Target


def main() -> None:
    params = load_params()
    cfg = from_dict(SearchConfig, params["search"], "search.")
    sample = from_dict(SampleConfig, params["sample"], "sample.")
    share = token_prior(read_domains("results/domains.json"))
    gen = make_generator(sample, share)  # the same generator, caps and grid as the proxy swarm
    baselines = baseline_mixtures(dict(zip(gen.domains, gen.prior)), params.get("human_mixtures"))
    model = load_regressor("data/regression", Target.parse(params["target"]), gen.domains)
    model.compile()  # machine code from this machine's cache, built on a miss
    result = search(model, gen, cfg, params["seed"], threads=runtime.threads())

    out = summary(result, model, baselines)
    write_yaml("results/mixture.yaml", out)
    top = mixture_frame(range(len(result.top.pred)), gen.domains, result.top.W)
    top.insert(1, "predicted_target", result.top.pred)
    write_csv("results/search_topk.csv", top)
    plot_choice("plots/search/weights.png", result, baselines)
    best = min(out["baselines"].items(), key=lambda kv: kv[1]["predicted_target"])
    print(
        f"chosen mixture predicts {out['predicted_target']:.4f} (best baseline {best[0]}: "
        f"{best[1]['predicted_target']:.4f}) -> results/mixture.yaml"
    )


if __name__ == "__main__":
    run_stage(main)
