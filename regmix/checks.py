"""Mistakes in params caught before any compute, each naming its key.

Every stage checks the whole params file when it starts (a bad `proxy.model.n_head` stops
`prepare`, not the proxies an hour later), and the names that need the corpus's domains
(`target`, `human_mixtures`, `large.mixtures`) are checked by the first stage that knows them.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from regmix.config import (
    ACQUISITION_RULES,
    PRECISIONS,
    SEARCH_RULES,
    ActiveConfig,
    DataConfig,
    EvaluateConfig,
    LargeConfig,
    ModelConfig,
    OptimConfig,
    ProxyConfig,
    RegressionConfig,
    SampleConfig,
    SearchConfig,
    VerifyConfig,
    from_dict,
)
from regmix.errors import UserError
from regmix.mixtures import NEAREST, TARGET_ONLY, baseline_mixtures, validate_mixture
from regmix.target import TASK, Target, eval_set_specs, slug

SECTIONS = {
    "data": DataConfig,
    "sample": SampleConfig,
    "proxy": ProxyConfig,
    "active": ActiveConfig,
    "regression": RegressionConfig,
    "search": SearchConfig,
    "large": LargeConfig,
    "verify": VerifyConfig,
    "evaluate": EvaluateConfig,
}
BUILT_IN_MIXTURES = ("regmix", "best_proxy", TARGET_ONLY, NEAREST)


def check_model(cfg: ModelConfig, key: str) -> None:
    if min(cfg.n_layer, cfg.n_head, cfg.d_model, cfg.d_ff, cfg.context) < 1:
        raise UserError(f"{key}: n_layer, n_head, d_model, d_ff and context must all be >= 1")
    if cfg.d_model % cfg.n_head:
        raise UserError(f"{key}.d_model {cfg.d_model} is not divisible by {key}.n_head {cfg.n_head}")
    if (cfg.d_model // cfg.n_head) % 2:
        raise UserError(
            f"{key}: head size d_model / n_head = {cfg.d_model // cfg.n_head} must be even "
            "(rotary embeddings rotate pairs of channels)"
        )


def check_optim(cfg: OptimConfig, key: str) -> None:
    if cfg.steps < 1:
        raise UserError(f"{key}.steps is {cfg.steps}: a run must train at least one step")
    if cfg.batch_size < 1:
        raise UserError(f"{key}.batch_size is {cfg.batch_size}: must be >= 1")
    if cfg.micro_batch_size is not None and (cfg.micro_batch_size < 1 or cfg.batch_size % cfg.micro_batch_size):
        raise UserError(f"{key}.micro_batch_size {cfg.micro_batch_size} must divide {key}.batch_size {cfg.batch_size}")
    if cfg.lr <= 0:
        raise UserError(f"{key}.lr is {cfg.lr}: must be > 0")
    if cfg.precision not in PRECISIONS:
        raise UserError(f"{key}.precision: {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}")


def check_active(cfg: ActiveConfig) -> None:
    if cfg.rounds < 0:
        raise UserError(f"active.rounds is {cfg.rounds}: must be >= 0 (0: the one-shot swarm)")
    if cfg.rule not in ACQUISITION_RULES:
        raise UserError(f"active.rule: unknown rule {cfg.rule!r}; choose one of {', '.join(ACQUISITION_RULES)}")
    if cfg.batch_size < 1 or cfg.candidates < cfg.batch_size:
        raise UserError(
            f"active.batch_size {cfg.batch_size} must be >= 1 and at most active.candidates {cfg.candidates}"
        )
    if cfg.kappa < 0 or cfg.spacing < 0:
        raise UserError(f"active.kappa {cfg.kappa} and active.spacing {cfg.spacing} must be >= 0")
    if not 0 < cfg.promising <= 1:
        raise UserError(f"active.promising {cfg.promising} must be a fraction in (0, 1]")
    if not 0 <= cfg.explore <= 1:
        raise UserError(f"active.explore {cfg.explore} must be a fraction in [0, 1]")
    if cfg.regression.train_set or cfg.regression.eval_sets:
        raise UserError("active.regression: train_set and eval_sets must be empty: rounds learn from the proxies")
    if cfg.rounds and cfg.regression.n_bootstrap < 2:
        raise UserError(
            f"active.rounds needs the acquisition's bootstrap members: active.regression.n_bootstrap "
            f"is {cfg.regression.n_bootstrap}, at least 2 needed"
        )


def check_verify(cfg: VerifyConfig, proxy: ProxyConfig) -> None:
    if cfg.seeds < 0:
        raise UserError(f"verify.seeds is {cfg.seeds}: must be >= 0 (0: off)")
    scaled = cfg.scale(proxy)  # unknown keys are named here, before any compute
    check_model(scaled.model, "verify.model")
    check_optim(scaled.optim, "verify.optim")


def required_unset(params: Mapping[str, Any], where: str = "") -> list[str]:
    """Keys a config option marks required (Hydra's `???`, e.g. data=jsonl's `path`) still unset."""
    unset = []
    for key, value in params.items():
        if isinstance(value, Mapping):
            unset += required_unset(value, f"{where}{key}.")
        elif value == "???":
            unset.append(f"{where}{key}")
    return unset


def check_params(
    params: Mapping[str, Any],
    domains: Sequence[str] | None = None,
    held_out: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
) -> None:
    """Every section builds its typed config and holds together; names are checked against the
    training `domains` (and the `held_out` sets and `tasks`; None: tasks not known here) when given."""
    missing = sorted(set(SECTIONS) - set(params))
    if missing:
        raise UserError(f"params: missing section(s) {', '.join(missing)}")
    unset = required_unset(params)
    if unset:
        raise UserError(f"{', '.join(unset)}: required by the chosen option, not set (e.g. -S {unset[0]}=...)")
    cfg = {name: from_dict(cls, params[name], f"{name}.") for name, cls in SECTIONS.items()}
    for name in ("proxy", "large"):
        check_model(cfg[name].model, f"{name}.model")
        check_optim(cfg[name].optim, f"{name}.optim")
    check_counts(cfg)
    check_active(cfg["active"])
    check_verify(cfg["verify"], cfg["proxy"])
    if cfg["search"].rule not in SEARCH_RULES:
        raise UserError(f"search.rule: unknown rule {cfg['search'].rule!r}; choose one of {', '.join(SEARCH_RULES)}")
    check_human_sums(params.get("human_mixtures") or {})
    if cfg["proxy"].replicates > cfg["sample"].n_mixtures:
        raise UserError(
            f"proxy.replicates {cfg['proxy'].replicates} is more than sample.n_mixtures {cfg['sample'].n_mixtures}"
        )
    if cfg["search"].rule in ("lower_confidence", "band") and cfg["regression"].n_bootstrap < 2:
        raise UserError(
            f"search.rule={cfg['search'].rule} needs the regression's bootstrap members: "
            f"regression.n_bootstrap is {cfg['regression'].n_bootstrap}, at least 2 needed "
            "(or search.rule=top_k)"
        )
    check_evaluation(params, cfg["data"])
    target = Target.parse(
        params.get("target"), params.get("target_metric", "loss"), list(domains) if domains is not None else None
    )
    if domains is not None:
        check_names(params, cfg["large"], target, list(domains), [*held_out], tasks)


# (section, key, smallest value): counts whose nonsense value would otherwise surface as another key's error
COUNTS = (
    ("sample", "n_mixtures", 1),
    ("proxy", "replicates", 0),
    ("search", "n_simulations", 1),
    ("search", "top_k", 1),
    ("large", "seeds", 1),
)


def check_counts(cfg: Mapping[str, Any]) -> None:
    for section, key, least in COUNTS:
        value = getattr(cfg[section], key)
        if value < least:
            raise UserError(f"{section}.{key} must be at least {least}, got {value}")


def check_human_sums(human: Mapping[str, Any]) -> None:
    """Each hand-made mixture's weights are numbers >= 0 that sum to 1, checked before the domains are
    known (over its own names; check_names checks them against the corpus)."""
    if not isinstance(human, Mapping):
        raise UserError(f"human_mixtures: expected {{name: {{domain: weight}}}}, got {human!r}")
    for name, weights in human.items():
        validate_mixture(weights, list(weights) if isinstance(weights, Mapping) else [], f"human_mixtures.{name}")


def check_evaluation(params: Mapping[str, Any], data: DataConfig) -> None:
    """`eval_sets`, `tasks` and `data` settings that decide what is held out, before any compute."""
    eval_set_specs(params.get("eval_sets"))
    tasks = params.get("tasks") or {}
    if not isinstance(tasks, Mapping):
        raise UserError(f"tasks: expected {{name: path to a .jsonl file}}, got {tasks!r}")
    for name, path in tasks.items():
        if not isinstance(name, str) or slug(name) != name or name in (params.get("eval_sets") or {}):
            raise UserError(
                f"tasks.{name}: a task's name must be lowercase letters, digits and `_`, unlike any evaluation set's"
            )
        if not isinstance(path, str):
            raise UserError(f"tasks.{name}: expected the path of a .jsonl file (context, choices, gold), got {path!r}")
    if not 0.2 <= data.test_fraction <= 0.8:
        raise UserError(
            f"data.test_fraction is {data.test_fraction}: the share of held-out documents in test "
            "must be between 0.2 and 0.8 (selection reads the rest)"
        )


def check_names(
    params: Mapping[str, Any],
    large: LargeConfig,
    target: Target,
    domains: list[str],
    held_out: Sequence[str] = (),
    tasks: Sequence[str] | None = None,
) -> None:
    known = {*domains, *held_out, *(f"{TASK}{t}" for t in tasks or ())}
    unknown = [n for n in target.names if n not in known and not (tasks is None and n.startswith(TASK))]
    if unknown:
        raise UserError(
            f"target: {', '.join(unknown)} is no domain, evaluation set or task of this run; "
            f"domains: {', '.join(domains)}; held out: {', '.join(held_out) or 'none'}; "
            f"tasks: {', '.join(f'{TASK}{t}' for t in tasks or ()) or 'none'}"
        )
    human = params.get("human_mixtures") or {}
    baselines = baseline_mixtures({d: 1 / len(domains) for d in domains}, human)  # validates every human mixture
    valid = {*BUILT_IN_MIXTURES, *baselines}
    # large.replicate may name mixtures large.mixtures leaves out (they train nothing), not unknown ones
    for key, names in (
        ("large.mixtures", large.mixtures),
        ("large.replicate", list(large.replicate)),
        ("verify.mixtures", params["verify"]["mixtures"]),
    ):
        unknown = [n for n in names if n not in valid and not n.startswith(("random_", "proxy_"))]
        if unknown:
            raise UserError(
                f"{key}: unknown mixture(s) {', '.join(unknown)}; valid: "
                f"{', '.join([*valid, 'random_<k>', 'proxy_<k>'])}"
            )
    if TARGET_ONLY in large.mixtures and not set(target.names or domains) & set(domains):
        raise UserError(
            f"large.mixtures: `{TARGET_ONLY}` needs a target over training domains; `{target.name}` has "
            f"none (use `{NEAREST}`, which reads the target's text)"
        )
