"""The `regmix` command. `regmix check -S key=value ...` checks the params that `dvc exp run` with
the same overrides would compose, before any compute; `regmix plan -S ...` prints what that run
would train and its ETA here, without running it; `regmix export` writes a compared mixture for
another trainer (Megatron-LM / NeMo, OLMo-core, litdata, Hugging Face datasets): see regmix.handoff."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from regmix import cost
from regmix.checks import check_params
from regmix.choose.mixture_files import CHOSEN
from regmix.compose import CONF_DIR, composed
from regmix.errors import UserError
from regmix.files import PARAMS_FILE, load_params, run_stage, write_text
from regmix.handoff import formats, planning
from regmix.tables import read_domains

COMPARE_DIR = "results/compare"  # the compared-mixture files the large runs train from (verify, dvc.yaml)
DOMAINS_FILE = "results/domains.json"  # the prepare stage's domains table (dvc.yaml)

EXPORT_HELP = """\
Write a compared mixture (results/compare/<name>.json) in a trainer's own format.
Every export states the token budget it was planned for and each domain's planned epochs
(weight x budget / domain train tokens), and warns (on stderr, and in the file where the
format has comments) when a domain would repeat more than the cap. Zero-weight domains are
left out; the other weights are normalised to sum to 1."""

FORMATS_HELP = """\
formats:
  megatron     Megatron-LM / NeMo blend: `--data-path w1 prefix1 w2 prefix2 ...` after `#`
               comment lines; with --split, one `--train-data-path` / `--valid-data-path` line
               each. Weights are token shares (Megatron draws fixed-length sequences).
  olmo-core    YAML of OLMo-core's SourceMixtureDatasetConfig: per source target_ratio, paths
               and max_repetition_ratio (planned epochs rounded up to 0.1, at least 1), with
               requested_tokens (the budget) and global_batch_size.
  litdata      JSON: `datasets`, a list of {"input_dir", "weight"} for CombinedStreamingDataset
               (iterate_over_all=False), which picks each item's dataset with probability
               weight / sum(weights): token shares for same-length token blocks (TokensLoader).
  hf-datasets  JSON: `probabilities` for datasets.interleave_datasets, which draws documents:
               p_i proportional to weight_i / mean document length_i (train tokens / train
               documents), so each domain's expected token share is its weight.

examples:
  regmix export --to megatron --prefix-template /data/{domain}/text_document
  regmix export --to megatron --split train --split valid --prefix-template /data/{split}/{domain}_text_document
  regmix export --to olmo-core --prefix-template 's3://bucket/{domain}/*.npy' --tokens 25e9 -o mix.yaml
  regmix export --to hf-datasets --mixture prior --prefixes my_datasets.yaml -o probs.json"""


def token_count(text: str) -> int:
    """A positive whole number of tokens, written as 25000000000, 25_000_000_000 or 25e9."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_integer() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number of tokens")
    return int(value)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="regmix", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export_parser(commands)
    check_parser(commands)
    plan_parser(commands)
    return top


def export_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a compared mixture for another trainer",
        description=EXPORT_HELP,
        epilog=FORMATS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("--to", required=True, choices=formats.FORMATS, help="the trainer's format")
    export.add_argument(
        "--mixture",
        default=CHOSEN,
        metavar="NAME",
        help=f"compared mixture to export (default {CHOSEN}, the choice the large runs train)",
    )
    export.add_argument(
        "--compare",
        default=COMPARE_DIR,
        type=Path,
        metavar="DIR",
        help=f"folder of compared-mixture files (default {COMPARE_DIR})",
    )
    export.add_argument(
        "--domains",
        default=DOMAINS_FILE,
        type=Path,
        metavar="FILE",
        help=f"domains table with train tokens and documents (default {DOMAINS_FILE})",
    )
    budget_options(export)
    prefix_options(export)
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="file to write (default stdout)")
    export.set_defaults(run=export_command)


def budget_options(export: argparse.ArgumentParser) -> None:
    """The token budget and the repeat cap an export is planned for."""
    export.add_argument(
        "--params",
        default=PARAMS_FILE,
        type=Path,
        metavar="FILE",
        help=f"composed params: the large run's tokens and sample.max_epochs (default {PARAMS_FILE})",
    )
    export.add_argument(
        "--tokens",
        type=token_count,
        metavar="N",
        help="token budget (default large.optim.steps x large.optim.batch_size x large.model.context)",
    )
    export.add_argument(
        "--max-epochs",
        type=float,
        metavar="X",
        help="warn when a domain repeats more epochs than this (default sample.max_epochs)",
    )


def prefix_options(export: argparse.ArgumentParser) -> None:
    """Where the trainer reads each domain, and the splits a Megatron export names."""
    where = export.add_mutually_exclusive_group()
    where.add_argument(
        "--prefix-template",
        metavar="TEMPLATE",
        help="each domain's data prefix / path / dataset, {domain} and {split} filled in (default {domain})",
    )
    where.add_argument(
        "--prefixes",
        type=Path,
        metavar="FILE",
        help="YAML or JSON map domain -> prefix (or domain -> {train: ..., valid: ...})",
    )
    export.add_argument(
        "--split",
        action="append",
        choices=formats.SPLITS,
        help="megatron: one --<split>-data-path line per --split (default one --data-path)",
    )


def check_parser(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="check params before any compute (the overrides `dvc exp run -S` takes)",
        description="Compose conf/ with the overrides, as `dvc exp run -S` does, and check "
        "every key; with no -S, check params.yaml as it is.",
    )
    params_options(check)
    check.set_defaults(run=check_command)


def plan_parser(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser(
        "plan",
        help="what a run trains and how long it takes here, without running it",
        description="The proxies', verify's and the large runs' tokens, devices and ETA for "
        "the params `dvc exp run -S` would compose (no -S: params.yaml), rated by "
        "the last run of the same shape here or a timed warm-up (seconds). Nothing "
        "is trained or written; work kept in the machine store is not counted off.",
    )
    params_options(plan)
    plan.set_defaults(run=plan_command)


def params_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-S",
        dest="overrides",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="a Hydra override, as `dvc exp run -S` takes it (repeatable)",
    )
    command.add_argument(
        "--conf", default=CONF_DIR, type=Path, metavar="DIR", help=f"config folder (default {CONF_DIR})"
    )


def checked_params(args: argparse.Namespace) -> tuple[dict, str]:
    """Composed (or params.yaml) and checked params, and what they came from; a Hydra error is
    shown as a one-line UserError."""
    if args.overrides is None:
        params, what = load_params(PARAMS_FILE), PARAMS_FILE
    else:
        try:
            params = composed(args.overrides, args.conf)
        except (HydraException, OmegaConfBaseException) as e:
            raise UserError(f"-S {' -S '.join(args.overrides)}: {str(e).splitlines()[0]}") from None
        what = f"conf/ with -S {' -S '.join(args.overrides)}"
    check_params(params)
    return params, what


def check_command(args: argparse.Namespace) -> None:
    print(f"params ok: {checked_params(args)[1]}")


def plan_command(args: argparse.Namespace) -> None:
    params, what = checked_params(args)
    print(f"plan for {what} (nothing runs):")
    for line in cost.describe(cost.pipeline_plan(params)):
        print(line)


def export_command(args: argparse.Namespace) -> None:
    splits = list(dict.fromkeys(args.split or []))
    if splits and args.to != "megatron":
        raise UserError(f"--split is for --to megatron; --to {args.to} exports the train split")
    compared = planning.read_compared(args.compare, args.mixture)
    domains = read_domains(args.domains)
    budget, cap, cap_source = planning.budget_and_cap(args.params, args.tokens, args.max_epochs)
    plan = planning.plan(compared.name, compared.mixture, domains, budget, cap, cap_source)
    mapping = planning.read_prefix_map(args.prefixes, list(domains)) if args.prefixes is not None else None

    def paths(split: str | None) -> dict[str, str]:
        return planning.prefixes(plan.domains, split, list(domains), args.prefix_template, mapping, str(args.prefixes))

    source = str(args.compare / f"{args.mixture}.json")
    text = formats.render(args.to, plan, source, paths, splits, domains)
    for warning in plan.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text(args.output, text)
        print(
            f"mixture {plan.name!r} for {args.to} ({len(plan.shares)} domains, "
            f"{plan.budget.tokens:,} tokens) -> {args.output}",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run_stage(lambda: args.run(args))


if __name__ == "__main__":
    main()
