"""Sample the proxy swarm: results/mixtures.csv (one row per proxy) and its plot."""

from regmix.config import SampleConfig, from_dict
from regmix.files import load_params, run_stage
from regmix.mixtures import make_generator, plot_swarm, sample_mixtures
from regmix.tables import mixture_frame, read_domains, token_prior, write_csv


def main() -> None:
    params = load_params()
    cfg = from_dict(SampleConfig, params["sample"], "sample.")
    share = token_prior(read_domains("results/domains.json"))
    gen = make_generator(cfg, share)
    W = sample_mixtures(gen, cfg, params["seed"])
    write_csv("results/mixtures.csv", mixture_frame(range(len(W)), gen.domains, W))
    plot_swarm("plots/sample/swarm.png", gen.domains, W, share)
    print(f"sampled {len(W)} mixtures over {len(gen.domains)} domains ({cfg.method}) -> results/mixtures.csv")


if __name__ == "__main__":
    run_stage(main)
