"""train: the large model on one compared mixture, once per seed: checkpoint, run.json and hf/
export, and curves, each in its seed's folder. A mixture whose runs are another's (the same
weights and seeds: `runs_of` in its file) trains nothing and says so in `runs_of.json`.

Data parallel: `torchrun --nproc_per_node N -m stages.train <same arguments>`.
"""

from __future__ import annotations

from regmix import runtime
from regmix.choose.mixture_files import RUNS_OF_FILE, read_one, remove_other_runs, run_dir
from regmix.config import LargeConfig, from_dict
from regmix.files import run_stage, write_json
from regmix.progress import say
from regmix.train.large import train_large
from stages import arguments


def main() -> None:
    args, params = arguments(
        __doc__,
        mixture="compared-mixture file (verify)",
        tokens="token shards (prepare)",
        model="model folder to write (a seed_<s>/ folder a seed)",
        curves="curves folder to write (a seed_<s>/ folder a seed)",
    )
    cfg = from_dict(LargeConfig, params["large"], "large.")
    compared = read_one(args.mixture)
    if compared.runs_of:  # the same weights and seeds as another compared mixture: its runs serve both
        for folder in (args.model, args.curves):
            remove_other_runs(folder, [])
            write_json(folder / RUNS_OF_FILE, {"runs_of": compared.runs_of, "seeds": compared.seeds})
        say(
            f"train: {compared.name} is {compared.runs_of}'s mixture with its seeds {compared.seeds}: "
            f"its runs are {compared.runs_of}'s, trained once (under data/large/{compared.runs_of})"
        )
        return
    for folder in (args.model, args.curves):
        remove_other_runs(folder, compared.seeds)
        (folder / RUNS_OF_FILE).unlink(missing_ok=True)
    for seed in compared.seeds:  # a finished seed resumes from its final checkpoint: nothing retrains
        train_large(
            compared.name,
            compared.mixture,
            cfg,
            seed,
            args.tokens,
            run_dir(args.model, seed),
            run_dir(args.curves, seed),
            threads=runtime.positive_env("REGMIX_THREADS"),
            max_epochs=params["sample"]["max_epochs"],
        )


if __name__ == "__main__":
    run_stage(main)
