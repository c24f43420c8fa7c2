"""prepare: corpus -> tokeniser + token shards and the domains table."""

from regmix import runtime
from regmix.checks import check_params
from regmix.config import DataConfig, from_dict
from regmix.data.prepare import prepare
from regmix.files import run_stage, write_json
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards folder to write", domains="domains table (JSON) to write")
    cfg = from_dict(DataConfig, params["data"], "data.")
    domains = prepare(cfg, params["seed"], args.tokens, workers=runtime.workers())
    check_params(params, list(domains))  # names that need the domains, before the stages that train
    write_json(args.domains, domains)
    for name, d in domains.items():
        print(f"{name:<20} {d['documents']:>7} docs {d['train_tokens']:>11,} train {d['valid_tokens']:>9,} valid tokens")


if __name__ == "__main__":
    run_stage(main)
