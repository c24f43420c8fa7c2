"""Typed configs built from the sections of params.yaml (one per stage).

Each dataclass mirrors one config group under conf/; `from_dict` refuses unknown keys so a
typo in conf/ or in `dvc exp run -S` fails with the key's name instead of being ignored.
Defaults equal the default composition of conf/ (tests/test_config.py fails when they drift),
so `Config()` in code and `params.yaml` of a default run describe the same run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar, Union

from regmix.errors import UserError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, recursing into nested dataclass fields. A key left
    out takes the field's default; a nested section changes only the keys it names of the
    field's own default (the large run's optim is not the proxies')."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(where + k for k in unknown)}")
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_in(hints[name])
        if sub is not None and isinstance(value, dict):
            default = _default_of(fields[name])
            base = dataclasses.asdict(default) if dataclasses.is_dataclass(default) else {}
            value = from_dict(sub, {**base, **value}, f"{where}{name}.")
        else:
            _check_type(value, hints[name], f"{where}{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise UserError(f"bad config section {where or cls.__name__}: {e}") from None


def _default_of(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


_EXPECTED = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    dict: "a mapping",
    list: "a list",
}


def _fits(value: Any, hint: Any) -> bool:
    """Whether `value` is of the plain type `hint` (int, float, bool, str, dict, list, their
    Optional and Union forms); other hints are left to the section's own checks."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    base = origin or hint
    if base is type(None):
        return value is None
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base in (str, dict, list):
        return isinstance(value, base)
    return True


def _check_type(value: Any, hint: Any, key: str) -> None:
    """A UserError naming `key` when `value` is not of its field's type (`n_mixtures=abc`)."""
    if not _fits(value, hint):
        kinds = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
        expected = " or ".join(_EXPECTED.get(typing.get_origin(a) or a, str(a)) for a in kinds)
        optional = ", or null" if type(None) in typing.get_args(hint) else ""
        raise UserError(f"{key}: expected {expected}{optional}, got {value!r}")


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass inside a type hint such as `Foo` or `Optional[Foo]`, else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    if typing.get_origin(hint) in (Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


# --------------------------------------------------------------------------- data
@dataclass
class TokenizerConfig:
    path: Optional[str] = None  # tokenizer.json or HF tokenizer name; None trains a BPE
    vocab_size: int = 4096  # BPE vocabulary size when training one
    train_chars: int = 20_000_000  # characters of train text the BPE is trained on


@dataclass
class DataConfig:
    source: str = "demo"  # demo | jsonl | pile | hf | megatron | numpy
    path: Optional[str] = None  # corpus folder for jsonl / pile (local files)
    hf_name: Optional[str] = None  # hub dataset name (pile, hf)
    hf_config: Optional[str] = None  # hub dataset config name (hf)
    text_field: str = "text"  # record field holding the text
    domain_field: Optional[str] = None  # record field naming the domain (hf); dotted path
    include: list[str] = field(default_factory=list)  # keep only these domains (empty: all)
    exclude: list[str] = field(default_factory=list)  # drop these domains
    max_documents: Optional[int] = None  # cap on documents per domain and split
    max_tokens: Optional[int] = None  # cap on train tokens per domain
    valid_fraction: float = 0.1  # documents held out (valid + test) when the source has no valid split
    test_fraction: float = 0.5  # share of each set's held-out documents in test (the verdict's); the rest: valid
    eval_only: list[str] = field(default_factory=list)  # domains scored but never trained on (weight 0 everywhere)
    skip_bad_records: bool = False  # skip malformed records (counted per file) instead of failing
    demo_chars: int = 2_000_000  # characters per demo domain
    dtype: Optional[str] = None  # numpy source: dtype of raw token files (.bin, header-less .npy), e.g. uint16
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)


# ----------------------------------------------------------------------- mixtures
@dataclass
class SampleConfig:
    method: str = "regmix"  # regmix (Dirichlet around the prior) | uniform | space_filling
    n_mixtures: int = 64  # size of the proxy swarm
    prior: Optional[dict[str, float]] = None  # domain -> weight; None: token share
    temperature: float = 0.5  # prior ** temperature, renormalised
    min_strength: float = 0.1  # smallest Dirichlet concentration multiplier
    max_strength: float = 5.0  # largest Dirichlet concentration multiplier
    n_strengths: int = 15  # log-spaced strengths between min and max (RegMix: 15)
    # most epochs of a domain's train tokens in the large run: weight <= max_epochs x tokens / large-run
    # tokens (large.optim.steps x batch_size x model.context); null: no caps
    max_epochs: Optional[float] = 4.0
    minimum: float = 2e-4  # weights below this become 0; weights round to this grid
    min_distance: float = 0.01  # L1 distance under which a draw is a near-duplicate


SEARCH_RULES = ("top_k", "lower_confidence", "trust_region", "band")  # regmix.choose.rules


@dataclass
class SearchConfig:
    n_simulations: int = 1_000_000  # mixtures simulated through the regressor
    rule: str = "lower_confidence"  # lower_confidence | top_k (RegMix) | trust_region | band (regmix.choose.rules)
    top_k: int = 100  # best mixtures averaged into the choice (top_k, lower_confidence, trust_region)
    kappa: float = 1.0  # lower_confidence: minimise the members' mean + kappa x their std
    trust_radius: float = 1.0  # trust_region: max L1 to a trained proxy, x the proxies' median nearest-neighbour L1
    band: float = 1.0  # band: average all within band x sigma of the best (sigma: members' median std at the top_k)
    candidates: int = 10_000  # the base's best mixtures that the members and the trust rule score
    chunk_size: int = 100_000  # simulated mixtures per chunk (memory stays flat)
    spread_simulations: Optional[int] = 100_000  # pool prefix the bootstrap members search (null: all)
    # The steps after the rule propose, verify's fresh seeds decide (regmix.choose.decision). Defaults measured
    # by benchmarks.bench_decision on targets with interior optima (conf/search/default.yaml says how): all off.
    # propose the prior unless the choice beats it with this probability (FittedRegressor.beats; 0: never)
    min_confidence: float = 0.0
    # propose the trained proxy with the lowest estimated loss (measured, shrunk to the regression) when
    # estimated lower than the choice by more than `incumbent_margin` x the fit's resolution (regmix.choose.search)
    incumbent: bool = False
    incumbent_margin: float = 1.0
    # minimise the rule's score + prior_penalty x KL(mixture || prior) (nats per nat; 0: off)
    prior_penalty: float = 0.0


# ------------------------------------------------------------------ model / train
@dataclass
class ModelConfig:
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 64
    d_ff: int = 192  # SwiGLU hidden width
    context: int = 128  # sequence length in tokens
    vocab_size: Optional[int] = None  # None: the tokenizer's vocabulary size
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    loss_chunk: int = 256  # >0: fused output head + loss over this many rows at a time (speed, memory)


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class OptimConfig:
    steps: int = 128  # optimiser steps
    batch_size: int = 8  # sequences per step (global, across data-parallel ranks)
    micro_batch_size: Optional[int] = None  # sequences per forward/backward (gradient accumulation)
    lr: float = 3e-3  # peak learning rate
    min_lr: float = 0.0  # floor of the cosine schedule
    schedule: str = "constant"  # constant (after warmup) | cosine
    warmup_steps: int = 12
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    precision: str = "fp32"  # fp32 (exact) | bf16 (autocast) | auto: bf16 where the device has it natively
    compile: bool = False  # torch.compile the model


@dataclass
class EvalWindowsConfig:
    windows_per_domain: int = 32  # fixed validation windows per domain (same for every model)
    batch_size: int = 32


@dataclass
class ProxyConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(precision="auto"))
    eval: EvalWindowsConfig = field(default_factory=EvalWindowsConfig)
    replicates: int = 8  # swarm mixtures trained again with another seed: the proxies' seed noise


@dataclass
class LargeConfig:
    # names trained and compared (see regmix.choose.mixture_files)
    mixtures: list[str] = field(
        default_factory=lambda: [
            "regmix",
            "best_proxy",
            "uniform",
            "prior",
            "nearest",
            "random_1",
            "random_2",
            "random_3",
            "random_4",
        ]
    )
    seeds: int = 1  # seeds each compared mixture is trained with (seed, seed + 1, ...)
    # more seeds for some mixtures: their spread measures the seed noise every interval uses
    replicate: dict[str, int] = field(
        default_factory=lambda: {"regmix": 3, "best_proxy": 3, "uniform": 2, "prior": 2, "nearest": 2}
    )
    model: ModelConfig = field(default_factory=lambda: ModelConfig(n_layer=4, n_head=4, d_model=192, d_ff=512))
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            steps=200, batch_size=16, lr=2e-3, min_lr=1e-4, schedule="cosine", warmup_steps=20, precision="auto"
        )
    )
    eval: EvalWindowsConfig = field(default_factory=lambda: EvalWindowsConfig(windows_per_domain=16))
    checkpoint_every: int = 100  # steps between resumable checkpoints


def tokens_per_step(optim: OptimConfig, context: int) -> int:
    """Tokens one optimiser step trains on, summed over data-parallel ranks."""
    return optim.batch_size * context


def train_tokens(optim: OptimConfig, context: int) -> int:
    """Tokens a whole run trains on."""
    return optim.steps * tokens_per_step(optim, context)


# -------------------------------------------------------------------- regression
@dataclass
class RegressionConfig:
    model: str = "lightgbm"  # lightgbm | linear | loglinear | gp | ensemble (params: {member: params})
    params: dict[str, Any] = field(
        default_factory=lambda: {  # regressor hyperparameters
            "n_estimators": 1000,
            "learning_rate": 0.01,
            "early_stopping_rounds": 50,
            "early_stopping_fraction": 0.2,
            "refit": True,
        }
    )
    cv_folds: int = 5  # k-fold cross-validation over the proxies
    n_bootstrap: int = 8  # bootstrap refits: predictive spread, and search's weight spread (0: none)
    per_term: bool = True  # a target of several terms: one regressor per term, combined as the target is
    train_set: Optional[dict[str, str]] = None  # {mixtures, losses} released CSVs instead of proxies
    eval_sets: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {mixtures, losses}


ACQUISITION_RULES = ("lower_confidence", "disagreement")


@dataclass
class ActiveConfig:
    """Rounds of proxies after the initial swarm, placed where they decide (regmix.choose.active)."""

    rounds: int = 0  # rounds after the initial swarm (0: RegMix's one-shot swarm)
    batch_size: int = 16  # proxies per round: the candidate optimum first, then the rule's picks
    rule: str = "lower_confidence"  # lower_confidence | disagreement (regmix.choose.active)
    kappa: float = 1.0  # members' std multiplier: optimum mean + kappa x std, lower_confidence mean - kappa x std
    promising: float = 0.1  # disagreement: the fraction of candidates, lowest members' mean first, it picks from
    explore: float = 0.75  # share of a batch (after the optimum) at the largest members' std over all candidates
    candidates: int = 10_000  # mixtures drawn per round from the sample generator (same prior, caps, grid)
    spacing: float = 0.25  # min L1 from trained proxies and each other, x the proxies' median nearest-neighbour L1
    # the acquisition's own regressor (with bootstrap members), never the `regression` section's:
    # `dvc exp run -S regression=...` refits and searches, it retrains no proxy
    regression: RegressionConfig = field(default_factory=RegressionConfig)


@dataclass
class VerifyConfig:
    """The compared mixtures' proxies trained again with fresh seeds after the search (regmix.choose.verify)."""

    seeds: int = 3  # fresh seeds per mixture (0: off)
    # those among large.mixtures are verified; regmix against each, and its gain over prior measured
    mixtures: list[str] = field(default_factory=lambda: ["regmix", "best_proxy", "prior", "uniform", "nearest"])
    # changes to the proxy's model and optim for the check (empty: the proxies' own scale). A larger
    # scale, nearer the large run's, checks that the choice's advantage transfers before it is spent
    model: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, Any] = field(default_factory=dict)
    # the large runs train, as `regmix`, a verified mixture measured distinguishably lower (false: the search's choice)
    choose: bool = True

    @property
    def at_proxy_scale(self) -> bool:
        return not (self.model or self.optim)

    def scale(self, proxy: ProxyConfig) -> ProxyConfig:
        """The proxy config the check trains: `proxy` with this section's changes."""
        return dataclasses.replace(
            proxy,
            model=from_dict(ModelConfig, {**dataclasses.asdict(proxy.model), **self.model}, "verify.model."),
            optim=from_dict(OptimConfig, {**dataclasses.asdict(proxy.optim), **self.optim}, "verify.optim."),
        )

    def changes(self) -> dict[str, Any]:
        """The changes as dotted keys: {"optim.steps": 512}."""
        return {f"{part}.{k}": v for part, d in (("model", self.model), ("optim", self.optim)) for k, v in d.items()}


@dataclass
class EvaluateConfig:
    windows_per_domain: int = 64  # validation windows per domain
    batch_size: int = 32
    tasks: list[str] = field(default_factory=lambda: ["last_word", "continuation"])
    n_examples: int = 100  # downstream examples per task and domain
    n_choices: int = 4  # choices in the continuation task
    passage_tokens: int = 48  # tokens of text before the answer (capped by the model's context)
    continuation_tokens: int = 16  # tokens of each ending in the continuation task
    lm_eval_tasks: list[str] = field(default_factory=list)  # lm-eval-harness tasks (empty: off)
    lm_eval_include_path: Optional[str] = None  # folder of extra lm-eval task definitions
    # auto: bf16 autocast where the device has it natively (as `auto` trains; ~1.4x on such a CPU), else fp32
    precision: str = "auto"
