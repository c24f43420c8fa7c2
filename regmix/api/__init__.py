"""RegMix from Python: each step of the pipeline as a function, without DVC or params.yaml.

The functions take plain Python objects and paths and return their results; they call the
same library functions as the stages (`stages/`), so a step gives what its stage would from
the same inputs. Configs are the dataclasses of `regmix.config` or dicts of the fields that
differ from their defaults (a nested section as a dict changes only the fields it names);
None means the defaults, which equal the default composition of `conf/`. Where work runs
comes from the environment, as for the stages (REGMIX_BACKEND, REGMIX_WORKERS, ...: see
docs/configuration.md), or from a `regmix.train.backends.Placement`.

    prepare      a corpus -> token shards in a folder; the domains table
    sample       the proxy swarm: a DataFrame of mixtures around the token share
    train_swarm  one small proxy LM per mixture; the proxies table (weights and losses)
    fit          the regression mixture -> target loss, cross-validated; a FitReport
    search       simulate many mixtures through the regression, average the best; a Choice
    verify       named mixtures' proxies trained again with fresh seeds, judged against `regmix`
    export       a mixture in a trainer's format: Megatron-LM / NeMo, OLMo-core, litdata, HF datasets

Example: the bundled tiny corpus from text to a Megatron-LM blend, with tiny models, in
seconds, in this process (`workers=1`; run it from the repository root; tests/test_api.py runs
this block as written). With more workers, local processes are spawned: a script that starts
them must call the API under `if __name__ == "__main__":`, as for any `multiprocessing` code.

```python
import tempfile
from regmix import api

work = tempfile.mkdtemp()
tiny = {"model": {"n_layer": 1, "n_head": 2, "d_model": 32, "d_ff": 64, "context": 32},
        "optim": {"steps": 10, "batch_size": 4, "warmup_steps": 2},
        "eval": {"windows_per_domain": 4, "batch_size": 4}}
large = {"model": {"context": 32}, "optim": {"steps": 100, "batch_size": 32}}  # 102,400 tokens: caps' epochs
domains = api.prepare({"source": "jsonl", "path": "tests/fixtures/tiny_corpus",
                       "tokenizer": {"vocab_size": 512}}, f"{work}/tokens", workers=1)
mixtures = api.sample(domains, {"n_mixtures": 8}, large_cfg=large)
proxies = api.train_swarm(mixtures, f"{work}/tokens", tiny, store=f"{work}/proxies",
                          placement=api.Placement(workers=1))
fitted = api.fit(proxies, "mean", {"cv_folds": 2})  # RegMix's LightGBM, 2-fold CV
choice = api.search(fitted.regressor, domains,
                    search_cfg={"n_simulations": 2000, "top_k": 10, "chunk_size": 1000}, large_cfg=large,
                    proxies=proxies)
checked = api.verify({"regmix": choice.mixture, "uniform": {d: 1 / len(domains) for d in domains}},
                     f"{work}/tokens", "mean", tiny, seeds=2, store=f"{work}/proxies",
                     placement=api.Placement(workers=1), regressor=fitted.regressor, choice=choice)
blend = api.export(choice.mixture, domains, to="megatron", large_cfg=large,
                   prefix_template="/data/{domain}_text_document")
print(choice.mixture)
print(blend)
```
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from regmix import runtime
from regmix.api.arguments import Domains, as_config, as_frame, as_proxy_table, as_stored, as_target, generator
from regmix.choose.choice import Choice, run_search
from regmix.choose.noise import seed_noise
from regmix.choose.regression import (
    FitReport,
    FittedRegressor,
    ProxyTable,
    fit_and_report,
    record_seed_noise,
    released_pair,
)
from regmix.choose.sampling import sample_mixtures
from regmix.choose.verify import run_verify, verify_seeds
from regmix.config import DataConfig, LargeConfig, ProxyConfig, RegressionConfig, SampleConfig, SearchConfig
from regmix.data.prepare import prepare as prepare_tokens
from regmix.data.shards import read_meta
from regmix.errors import UserError
from regmix.files import write_text
from regmix.handoff import formats, planning
from regmix.tables import mixture_frame
from regmix.train.backends import Placement, placement_from_env
from regmix.train.swarm import run_seeds, run_swarm

__all__ = ["Choice", "Placement", "as_config", "export", "fit", "prepare", "sample", "search", "train_swarm", "verify"]


def prepare(
    data: DataConfig | Mapping[str, Any] | None,
    tokens_dir: str | Path,
    seed: int = 0,
    workers: int | None = None,
    placement: Placement | None = None,
    cache: str | Path | None = None,
) -> dict[str, dict]:
    """Read the corpus `data` describes, train (or load) the tokeniser and write the token shards
    to `tokens_dir` (replaced only when every check passed). Returns the domains table:
    {domain: {documents, train_tokens, valid_tokens, source}}.

    Text is tokenised in `workers` local processes (None: REGMIX_WORKERS, else one per core)
    or, when the placement's backend is `ray` (default: REGMIX_BACKEND), as Ray tasks on its
    cluster; the shards are the same either way. `cache` holds the demo corpus' downloads
    (default REGMIX_CACHE).
    """
    placement = placement or placement_from_env()
    return prepare_tokens(
        as_config(DataConfig, data, "data."), seed, tokens_dir, cache, workers, placement.backend, placement.ray_address
    )


def sample(
    domains: Domains,
    sample_cfg: SampleConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    large_cfg: LargeConfig | Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The proxy swarm: `id` and one weight column per domain, each row a mixture summing to 1,
    drawn around the token share of `domains` (prepare's table, or {domain: share} with
    `sample_cfg={"max_epochs": None}`: caps need the table's token counts), each domain capped at
    `max_epochs` epochs of the large run `large_cfg` describes."""
    gen = generator(domains, sample_cfg, large_cfg)
    W = sample_mixtures(gen, as_config(SampleConfig, sample_cfg, "sample."), seed)
    return mixture_frame(range(len(W)), gen.domains, W)


def train_swarm(
    mixtures: pd.DataFrame,
    tokens_dir: str | Path,
    proxy_cfg: ProxyConfig | Mapping[str, Any] | None = None,
    store: str | Path | None = None,
    seed: int = 0,
    placement: Placement | None = None,
) -> pd.DataFrame:
    """Train one proxy per row of `mixtures` on the shards in `tokens_dir`; the proxies table:
    the rows of `mixtures` with one `loss.<domain>` validation loss column per domain.

    Each proxy is kept in `store` (default `$REGMIX_CACHE/proxies`) under a hash of what decides
    its losses, so a rerun or a grown swarm trains only what is missing. `placement` (default:
    the environment, REGMIX_BACKEND, ...) says where they train: local processes, Ray or
    Slurm. The run's statistics are in the table's `attrs["stats"]`. For the seed noise, train
    a few rows again with `seed + 1` and give them to `fit` as `replicates`.
    """
    store = store if store is not None else runtime.cache_root() / "proxies"
    table, stats = run_swarm(
        mixtures,
        as_config(ProxyConfig, proxy_cfg, "proxy."),
        tokens_dir,
        store,
        seed,
        placement or placement_from_env(),
    )
    table.attrs["stats"] = stats
    return table


def fit(
    proxies: pd.DataFrame | ProxyTable | str | Path | None,
    target: Any,
    regression_cfg: RegressionConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    replicates: pd.DataFrame | str | Path | None = None,
) -> FitReport:
    """Fit the regression from mixture weights to the `target` loss (a domain, "mean" or
    {domain: weight}) on the proxies table (train_swarm's, or a proxies.csv path).

    Returns the FitReport: `.regressor` (the FittedRegressor search predicts with, bootstrap
    refits included), `.metrics` (k-fold CV scores, each eval set's, the fitted
    hyperparameters and `resolution`, beside the seed noise of `replicates` when given) and
    `.predictions` (true vs predicted per set). `regression_cfg.train_set`, when set, is fitted
    instead of `proxies`; its `eval_sets` are scored once, after fitting.
    """
    cfg = as_config(RegressionConfig, regression_cfg, "regression.")
    train = released_pair(cfg.train_set, "regression.train_set") if cfg.train_set else as_proxy_table(proxies)
    target = as_target(target, train.domains, train.scores)
    evals = {name: released_pair(spec, f"regression.eval_sets.{name}") for name, spec in cfg.eval_sets.items()}
    report = fit_and_report(train, evals, cfg, target, seed)
    noise = None if replicates is None else seed_noise(as_frame(proxies), as_frame(replicates), target)
    record_seed_noise(report, noise and noise.get("target_std"))
    return report


def search(
    regressor: FittedRegressor,
    token_share: Domains,
    sample_cfg: SampleConfig | Mapping[str, Any] | None = None,
    search_cfg: SearchConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    human_mixtures: Mapping[str, Mapping[str, float]] | None = None,
    threads: int | None = None,
    large_cfg: LargeConfig | Mapping[str, Any] | None = None,
    proxies: pd.DataFrame | ProxyTable | str | Path | None = None,
) -> Choice:
    """Simulate mixtures from the swarm's generator (give `sample` the same `sample_cfg` and
    `large_cfg`: same prior, caps and grid), predict each through `regressor` and average the
    best into the chosen mixture. `token_share` is prepare's domains table or {domain: share}; the summary
    also predicts the uniform and prior mixtures and any `human_mixtures` ({name: mixture}).
    `threads` default: REGMIX_THREADS, else every core (the result does not depend on it).
    `proxies` (train_swarm's table or a proxies.csv path) are where the regression has evidence:
    the summary gives the choice's L1 distance to the nearest of them, `rule: trust_region`
    needs them, and with `incumbent` (on) their measured losses compete with the choice (a
    regressor fitted with `replicates`).
    """
    gen = generator(token_share, sample_cfg, large_cfg)
    return run_search(
        regressor,
        gen,
        as_config(SearchConfig, search_cfg, "search."),
        seed,
        threads or runtime.threads(),
        None if proxies is None else as_proxy_table(proxies),
        human_mixtures,
    )


def verify(
    mixtures: Mapping[str, Mapping[str, float]],
    tokens_dir: str | Path,
    target: Any,
    proxy_cfg: ProxyConfig | Mapping[str, Any] | None = None,
    seeds: int = 3,
    seed: int = 0,
    store: str | Path | None = None,
    placement: Placement | None = None,
    regressor: FittedRegressor | None = None,
    proxies: pd.DataFrame | None = None,
    replicates: pd.DataFrame | None = None,
    choice: Choice | None = None,
) -> dict[str, Any]:
    """Train each named mixture's proxy again with `seeds` seeds the swarm never used (`seed + 2`,
    ...) and judge them as the verify stage does (regmix.choose.verify.run_verify): each mixture's
    mean and interval, `regmix` against the others, and its gain over `prior` measured beside the
    one `regressor` predicts. `proxies` and `replicates` (the swarm's tables) add their seed-noise
    pairs and `best_proxy`'s swarm loss. With `choice` (search's), the mixtures its steps proposed
    are measured beside `regmix`, and the decision ends with the verified pick.
    The dict is the verify stage's record (results/verify.json); the proxies' table is in its
    `"table"` entry and, with `choice`, the mixture to use (results/answer.yaml) in its `"answer"` entry.
    """
    domains = read_meta(tokens_dir).domains
    tgt = as_target(target, domains, None if proxies is None else as_proxy_table(proxies).scores)
    store = store if store is not None else runtime.cache_root() / "proxies"
    cfg = as_config(ProxyConfig, proxy_cfg, "proxy.")
    placement = placement or placement_from_env()

    def train(measured: dict[str, dict[str, float]]) -> pd.DataFrame:
        return run_seeds(measured, cfg, tokens_dir, store, verify_seeds(seeds, seed), tgt, domains, placement)

    verified = run_verify(
        mixtures,
        list(mixtures),
        train,
        tgt,
        regressor,
        None if choice is None else choice.summary,
        None if proxies is None else as_stored(proxies),
        None if replicates is None else as_stored(replicates),
    )
    out = {**verified.record, "table": verified.table}
    if verified.answer is not None:
        out["answer"] = verified.answer
    return out


def export(
    mixture: Mapping[str, float],
    domains: Mapping[str, Mapping[str, Any]],
    to: str = "megatron",
    *,
    tokens: int | None = None,
    large_cfg: LargeConfig | Mapping[str, Any] | None = None,
    max_epochs: float | None = None,
    sample_cfg: SampleConfig | Mapping[str, Any] | None = None,
    prefix_template: str | None = None,
    prefixes: Mapping[str, Any] | None = None,
    splits: Sequence[str] = (),
    name: str = "regmix",
    output: str | Path | None = None,
) -> str:
    """`mixture` ({domain: weight}) as the trainer `to` reads it (see `regmix export --help` and
    regmix.handoff): "megatron" (a `--data-path` blend; one line per split in `splits`),
    "olmo-core", "litdata" or "hf-datasets". Returns the text (also written to `output`).

    `domains` is prepare's table (train tokens per domain, for the planned epochs). The budget is
    `tokens`, else the large run's (`large_cfg`: steps x batch x context); a domain planned
    beyond `max_epochs` (default `sample_cfg.max_epochs`) is warned about. Each domain's data
    path comes from `prefix_template` ({domain}, {split}) or `prefixes` ({domain: prefix} or
    {domain: {split: prefix}}). Zero-weight domains are left out.
    """
    if to not in formats.FORMATS:
        raise UserError(f"export: to={to!r}; one of {', '.join(formats.FORMATS)}")
    if splits and to != "megatron":
        raise UserError(f"export: splits are for to='megatron'; {to} exports the train split")
    if tokens is not None and tokens <= 0:
        raise UserError(f"export: tokens={tokens} must be > 0")
    budget = (
        planning.Budget(int(tokens), "tokens=")
        if tokens is not None
        else planning.large_budget(
            {"large": dataclasses.asdict(as_config(LargeConfig, large_cfg, "large."))}, "large_cfg"
        )
    )
    cap, cap_source = (
        (max_epochs, "max_epochs")
        if max_epochs is not None
        else (as_config(SampleConfig, sample_cfg, "sample.").max_epochs, "sample.max_epochs")
    )
    plan = planning.plan(name, mixture, domains, budget, cap, cap_source)

    def paths(split: str | None) -> dict[str, str]:
        return planning.prefixes(plan.domains, split, list(domains), prefix_template, prefixes, "prefixes")

    text = formats.render(to, plan, "regmix.api", paths, list(splits), domains)
    for warning in plan.warnings():
        warnings.warn(warning, stacklevel=2)
    if output is not None:
        write_text(output, text)
    return text
