"""train: the large model on one compared mixture; checkpoint, run.json and hf/ export, curves.

Data parallel: `torchrun --nproc_per_node N -m stages.train <same arguments>`.
"""

from __future__ import annotations

from regmix import runtime
from regmix.compare import read_one
from regmix.config import LargeConfig, from_dict
from regmix.files import run_stage
from regmix.large import train_large
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, mixture="compared-mixture file (search)", tokens="token shards (prepare)",
                             model="model folder to write (checkpoint, run.json, hf/)", curves="curves folder to write")
    cfg = from_dict(LargeConfig, params["large"], "large.")
    name, mixture = read_one(args.mixture)
    train_large(name, mixture, cfg, params["seed"], args.tokens, args.model, args.curves,
                threads=runtime.positive_env("REGMIX_THREADS"), max_usage=params["sample"]["max_usage"])


if __name__ == "__main__":
    run_stage(main)
