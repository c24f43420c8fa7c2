"""sample: the proxy swarm (one mixture per proxy) and its plot."""

from regmix.checks import check_params
from regmix.choose.sampling import plot_swarm, sample_mixtures, swarm_generator
from regmix.config import LargeConfig, SampleConfig, from_dict
from regmix.files import run_stage
from regmix.tables import held_out_sets, mixture_frame, read_domains, token_prior, write_csv
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        domains="domains table (prepare)",
        mixtures="swarm table (CSV) to write",
        plot="swarm plot (PNG) to write",
    )
    cfg = from_dict(SampleConfig, params["sample"], "sample.")
    domains = read_domains(args.domains)
    share = token_prior(domains)
    check_params(params, list(share), held_out_sets(args.domains))
    gen = swarm_generator(cfg, from_dict(LargeConfig, params["large"], "large."), domains)
    W = sample_mixtures(gen, cfg, params["seed"])
    write_csv(args.mixtures, mixture_frame(range(len(W)), gen.domains, W))
    plot_swarm(args.plot, gen.domains, W, share)
    print(f"sampled {len(W)} mixtures over {len(gen.domains)} domains ({cfg.method}) -> {args.mixtures}")


if __name__ == "__main__":
    run_stage(main)
