"""prepare: corpus -> tokeniser + token shards and the domains table."""

from regmix import runtime
from regmix.checks import check_params
from regmix.config import DataConfig, from_dict
from regmix.data.prepare import prepare
from regmix.data.shards import read_meta
from regmix.files import run_stage, write_json
from stages import arguments


def main() -> None:
    args, params = arguments(__doc__, tokens="token shards folder to write", domains="domains table (JSON) to write")
    cfg = from_dict(DataConfig, params["data"], "data.")
    sets = prepare(
        cfg,
        params["seed"],
        args.tokens,
        workers=runtime.workers(),
        eval_sets=params.get("eval_sets"),
        tasks=params.get("tasks"),
    )
    meta = read_meta(args.tokens)
    check_params(
        params, meta.domains, meta.held_out, meta.tasks
    )  # names that need the sets, before the stages that train
    write_json(args.domains, sets)
    for name, d in sets.items():
        print(
            f"{name:<20} {d['role']:<9} {d['documents']:>7} docs {d.get('train_tokens', 0):>11,} train "
            f"{d['valid_tokens']:>9,} valid {d['test_tokens']:>9,} test tokens, "
            f"{d['test_13gram_in_train']:.1%} of test 13-grams in train"
        )


if __name__ == "__main__":
    run_stage(main)
