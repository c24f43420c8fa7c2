"""train: the large model on one mixture (`python -m stages.train <name>`; dvc foreach).

Data parallel with `torchrun --nproc_per_node N -m stages.train <name>`. Writes
data/large/<name>/ (checkpoint, run.json, hf/) and the curves in results/train/<name>/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from regmix.config import LargeConfig, from_dict
from regmix.errors import UserError
from regmix import runtime
from regmix.files import load_params, run_stage
from regmix.large import mixture_names, resolve_mixture, train_large

TOKENS = Path("data/tokens")


def main() -> None:
    params = load_params()
    cfg = from_dict(LargeConfig, params["large"], "large.")
    human = params.get("human_mixtures") or {}
    if len(sys.argv) != 2:
        names = ", ".join(mixture_names(cfg.n_random, human))
        raise UserError(f"usage: python -m stages.train <mixture>; one of: {names}")
    name = sys.argv[1]
    mixture = resolve_mixture(name, cfg.n_random, human, params["seed"])
    train_large(name, mixture, cfg, params["seed"], TOKENS, Path("data/large") / name,
                Path("results/train") / name, threads=runtime.positive_env("REGMIX_THREADS"))


if __name__ == "__main__":
    run_stage(main)
