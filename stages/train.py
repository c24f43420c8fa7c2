"""train: the large model on one compared mixture; checkpoint, run.json and hf/ export, curves.

Data parallel: `torchrun --nproc_per_node N -m stages.train <same arguments>`.
"""

from __future__ import annotations

from regmix import runtime
from regmix.compare import read_one
from regmix.config import LargeConfig, from_dict
from regmix.files import load_params, run_stage
from regmix.large import train_large
from stages import paths


def main() -> None:
    args = paths(__doc__, mixture="compared-mixture file (search)", tokens="token shards (prepare)",
                 model="model folder to write (checkpoint, run.json, hf/)", curves="curves folder to write")

    params = load_params()
    cfg = from_dict(LargeConfig, params["large"], "large.")
    name, mixture = read_one(args.mixture)
    train_large(name, mixture, cfg, params["seed"], args.tokens, args.model, args.curves,
                threads=runtime.positive_env("REGMIX_THREADS"), max_usage=params["sample"]["max_usage"])


if __name__ == "__main__":
    run_stage(main)
