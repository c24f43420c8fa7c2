"""prepare: corpus -> tokeniser + token shards (data/tokens) and results/domains.json."""

from regmix.config import DataConfig, from_dict
from regmix.data.prepare import prepare
from regmix import runtime
from regmix.files import load_params, run_stage, write_json

TOKENS_DIR = "data/tokens"
DOMAINS_FILE = "results/domains.json"


def main() -> None:
    params = load_params()
    cfg = from_dict(DataConfig, params["data"], "data.")
    domains = prepare(cfg, int(params.get("seed", 0)), TOKENS_DIR, workers=runtime.workers())
    write_json(DOMAINS_FILE, domains)
    for name, d in domains.items():
        print(f"{name:<20} {d['documents']:>7} docs {d['train_tokens']:>11,} train {d['valid_tokens']:>9,} valid tokens")


if __name__ == "__main__":
    run_stage(main)
