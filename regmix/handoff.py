"""A compared mixture handed to the trainers pre-training teams already run.

The pipeline's mixtures are token shares: the fraction of the large run's training tokens
each domain supplies (`results/compare/<name>.json`). Each trainer wants them in its own
shape and, for some, its own unit:

- Megatron-LM / NeMo draw fixed-length sequences from a blend, so a blend weight is a token
  share: `--data-path w1 prefix1 w2 prefix2 ...` (per split: `--train-data-path` ...).
- OLMo-core's `SourceMixtureDatasetConfig` takes each source's `target_ratio` of the
  requested tokens and a `max_repetition_ratio` (how many times its tokens may be reused).
- litdata's `CombinedStreamingDataset` picks the dataset of every item with probability
  weight / sum(weights): a token share when every item is a same-length token block
  (`TokensLoader(block_size)`, as litgpt's pre-training data does).
- Hugging Face `interleave_datasets` picks the dataset of every example (a document) with
  the given probabilities, so token shares become document probabilities: p_i is
  proportional to w_i / (mean document length of i).

Every export states the token budget it was planned for and each domain's planned epochs
(weight x budget / domain train tokens), and warns when a domain repeats beyond the cap.
The four formats stay in one module (~340 lines): they share that plan and differ only in a
renderer of a screen or less each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from regmix.choose.mixture_files import Compared, read_one
from regmix.config import LargeConfig, SampleConfig, from_dict, tokens_per_step, train_tokens
from regmix.errors import UserError
from regmix.files import existing, load_params

FORMATS = ("megatron", "olmo-core", "litdata", "hf-datasets")
SPLITS = ("train", "valid")
TRAIN = "train"


# ------------------------------------------------------------------------- inputs
def read_compared(folder: str | Path, name: str) -> Compared:
    """Compared mixture `name` from `folder/<name>.json`; an unknown name lists the known ones."""
    folder = existing(folder)
    path = folder / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json"))
        raise UserError(f"unknown mixture {name!r}: {folder} has {', '.join(known) or 'no mixtures'}")
    return read_one(path)


@dataclass(frozen=True)
class Budget:
    """The tokens a mixture is planned for, and where that number came from."""

    tokens: int
    source: str  # e.g. "--tokens" or the params product it was computed from
    tokens_per_step: int | None = None  # known when the budget is the large run's


def large_budget(params: Mapping[str, Any], where: str) -> Budget:
    """The large run's tokens: large.optim.steps x large.optim.batch_size x large.model.context."""
    cfg = from_dict(LargeConfig, params.get("large"), "large.")
    optim, context = cfg.optim, cfg.model.context
    return Budget(
        train_tokens(optim, context),
        f"large.optim.steps {optim.steps} x large.optim.batch_size {optim.batch_size} x "
        f"large.model.context {context}, from {where}",
        tokens_per_step(optim, context),
    )


def budget_and_cap(
    params_file: str | Path, tokens: int | None, max_epochs: float | None
) -> tuple[Budget, float | None, str]:
    """The token budget, the repeat cap in epochs and the cap's origin; params are read only
    for what the arguments leave open (the large run's tokens, `sample.max_epochs`)."""
    if tokens is not None and tokens <= 0:
        raise UserError(f"--tokens {tokens}: must be > 0")
    if max_epochs is not None and max_epochs <= 0:
        raise UserError(f"--max-epochs {max_epochs}: must be > 0")
    params = load_params(params_file) if tokens is None or max_epochs is None else {}
    budget = Budget(tokens, "--tokens") if tokens is not None else large_budget(params, str(params_file))
    if max_epochs is not None:
        return budget, max_epochs, "--max-epochs"
    return budget, from_dict(SampleConfig, params.get("sample"), "sample.").max_epochs, "sample.max_epochs"


# ------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Share:
    """One domain of the exported mixture."""

    domain: str
    weight: float  # token share, the non-zero weights normalised to sum to 1
    tokens: float  # weight x budget
    train_tokens: int  # the domain's train tokens (domains.json)
    epochs: float  # tokens / train_tokens


@dataclass(frozen=True)
class Plan:
    """A mixture over its non-zero domains, planned for a token budget."""

    name: str
    shares: list[Share]
    dropped: list[str]  # domains with zero weight, left out of every export
    budget: Budget
    cap: float | None  # repeat cap in epochs (None: no cap)
    cap_source: str

    @property
    def domains(self) -> list[str]:
        return [s.domain for s in self.shares]

    def warnings(self) -> list[str]:
        if self.cap is None:
            return []
        return [
            f"mixture {self.name!r}: domain {s.domain!r} would be repeated {s.epochs:.2f} epochs, "
            f"more than {self.cap:g} ({self.cap_source})"
            for s in self.shares
            if s.epochs > self.cap
        ]


def plan(
    name: str,
    mixture: Mapping[str, float],
    domains: Mapping[str, Mapping[str, Any]],
    budget: Budget,
    cap: float | None = None,
    cap_source: str = "--max-epochs",
) -> Plan:
    """Normalise the non-zero weights of `mixture` and plan each domain's tokens and epochs."""
    unknown = sorted(set(mixture) - set(domains))
    if unknown:
        raise UserError(f"mixture {name!r}: domain(s) {', '.join(unknown)} not in the domains table")
    kept = {d: float(w) for d, w in mixture.items() if w > 0}
    total = sum(kept.values())
    if total <= 0:
        raise UserError(f"mixture {name!r} gives every domain zero weight")
    shares = []
    for domain, w in kept.items():
        available = int(_field(domains, domain, "train_tokens"))
        if available <= 0:
            raise UserError(f"domain {domain!r} has no train tokens but weight {w:g} in mixture {name!r}")
        tokens = w / total * budget.tokens
        shares.append(Share(domain, w / total, tokens, available, tokens / available))
    return Plan(name, shares, [d for d in mixture if d not in kept], budget, cap, cap_source)


def _field(domains: Mapping[str, Mapping[str, Any]], domain: str, key: str) -> Any:
    try:
        return domains[domain][key]
    except (KeyError, TypeError):
        raise UserError(f"the domains table has no `{key}` for domain {domain!r}") from None


def train_documents(info: Mapping[str, Any]) -> tuple[float, bool]:
    """A domain's train documents and whether they are estimated.

    `train_documents` when the table has it; otherwise `documents` (both splits) times the
    train split's token share, train_tokens / (train_tokens + valid_tokens).
    """
    if "train_documents" in info:
        return float(info["train_documents"]), False
    total = info["train_tokens"] + info.get("valid_tokens", 0)
    return info["documents"] * info["train_tokens"] / total, True


def document_probabilities(
    p: Plan, domains: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, float], dict[str, float], bool]:
    """Per domain: the probability of drawing a document from it so that its expected share of
    tokens is its weight (p_i proportional to w_i / mean_len_i), the mean document length in
    tokens, and whether any document count was estimated (see `train_documents`)."""
    mean_len, estimated = {}, False
    for domain in p.domains:
        try:
            docs, guessed = train_documents(domains[domain])
        except KeyError as e:
            raise UserError(f"the domains table has no `{e.args[0]}` for domain {domain!r}") from None
        if docs <= 0:
            raise UserError(f"domain {domain!r} has no train documents")
        mean_len[domain] = domains[domain]["train_tokens"] / docs
        estimated |= guessed
    raw = {s.domain: s.weight / mean_len[s.domain] for s in p.shares}
    total = sum(raw.values())
    return {d: v / total for d, v in raw.items()}, mean_len, estimated


def max_repetition(epochs: float) -> float:
    """OLMo-core's `max_repetition_ratio` for a domain planned `epochs`: rounded up to a tenth
    of an epoch (float noise ignored), at least 1."""
    return max(1.0, math.ceil(round(epochs * 10, 6)) / 10)


# ---------------------------------------------------------------------- prefixes
def read_prefix_map(path: str | Path, domains: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML or JSON file: domain -> prefix, or domain -> {split: prefix}. A missing file is
    explained with an example over `domains` (the file is the user's, no stage writes it)."""
    if not Path(path).exists():
        example = "\n".join(f"  {d}: /data/{d}" for d in list(domains)[:3] or ["web", "code"])
        raise UserError(
            f"--prefixes {path}: no such file. It is yours to write: a YAML (or JSON) map from each "
            f"domain to where your trainer reads it (a litdata input_dir, a datasets name or path, a "
            f"Megatron prefix), for example\n{example}\nor per split, `<domain>: {{train: ..., valid: "
            f"...}}`; or give no file and --prefix-template '/data/{{domain}}'"
        )
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML or JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping domain -> prefix")
    return data


def prefixes(
    domains: Sequence[str],
    split: str | None,
    known: Sequence[str],
    template: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    where: str = "--prefixes",
) -> dict[str, str]:
    """Each domain's data prefix (path, directory, dataset name) in `split` (None: one for all).

    From `mapping` (domain -> prefix, or domain -> {split: prefix}) when given, else from
    `template` with `{domain}` (and `{split}`) filled in; `known` are all domain names, to
    catch a map's typos.
    """
    if mapping is not None:
        unknown = sorted(str(k) for k in mapping if k not in known)
        if unknown:
            raise UserError(f"{where}: unknown domain(s) {', '.join(unknown)}; known: {', '.join(known)}")
        missing = [d for d in domains if d not in mapping]
        if missing:
            raise UserError(f"{where}: no prefix for domain(s) {', '.join(missing)}")
        return {d: _split_value(mapping[d], split, f"{where}: {d}") for d in domains}
    template = template or "{domain}"
    if "{split}" in template and split is None:
        raise UserError(f"--prefix-template {template!r} uses {{split}}: give --split")
    try:
        return {d: template.format(domain=d, split=split) for d in domains}
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"--prefix-template {template!r}: {e!r}; placeholders are {{domain}} and {{split}}") from None


def _split_value(value: Any, split: str | None, where: str) -> str:
    if isinstance(value, Mapping):
        if split is None:
            raise UserError(f"{where} gives prefixes per split: give --split")
        if split not in value:
            raise UserError(f"{where} has no prefix for split {split!r}")
        value = value[split]
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: prefix must be a non-empty string, got {value!r}")
    return value


# ----------------------------------------------------------------------- exports
def number(x: float) -> float:
    """A weight as written: 12 significant digits, float noise of normalising dropped."""
    return float(f"{x:.12g}")


def summary(p: Plan, target: str, source: str, notes: Sequence[str] = ()) -> list[str]:
    """What every export states first: the mixture, the budget, each domain's plan, warnings."""
    b = p.budget
    cap = "no repeat cap" if p.cap is None else f"repeat cap {p.cap:g} epochs ({p.cap_source})"
    lines = [
        f"regmix export: mixture {p.name!r} ({source}) for {target}",
        f"token budget: {b.tokens:,} tokens ({b.source})",
        "weights: token shares, the non-zero ones normalised to sum to 1"
        + (f"; zero weight, left out: {', '.join(p.dropped)}" if p.dropped else ""),
        *notes,
        f"planned per domain (epochs = weight x budget / domain train tokens; {cap}):",
    ]
    width = max(len(d) for d in p.domains)
    for s in p.shares:
        lines.append(
            f"  {s.domain:<{width}}  weight {s.weight:<10.6g} {s.tokens:>15,.0f} tokens  "
            f"{s.epochs:>9.4g} epochs of {s.train_tokens:,} train tokens"
        )
    lines += [f"WARNING: {w}" for w in p.warnings()]
    return lines


def comment(lines: Sequence[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def megatron_args(p: Plan, prefix: Mapping[str, str], split: str | None = None) -> str:
    """`--data-path w1 prefix1 w2 prefix2 ...` (or `--<split>-data-path ...`)."""
    flag = "--data-path" if split is None else f"--{split}-data-path"
    return " ".join([flag, *(f"{s.weight:.12g} {prefix[s.domain]}" for s in p.shares)])


MEGATRON_NOTE = (
    "Megatron-LM / NeMo blends draw fixed-length sequences, so a blend weight is the domain's share of training tokens"
)


def to_megatron(
    p: Plan, source: str, paths: Callable[[str | None], Mapping[str, str]], splits: Sequence[str] | None = None
) -> str:
    """Comment lines, then one argument line per split (`--data-path` when `splits` is empty)."""
    lines = [megatron_args(p, paths(split), split) for split in (splits or [None])]
    return comment(summary(p, "Megatron-LM / NeMo", source, [MEGATRON_NOTE])) + "\n".join(lines) + "\n"


def to_olmo_core(p: Plan, source: str, paths: Mapping[str, str]) -> str:
    """An OLMo-core `SourceMixtureDatasetConfig` (source_list.sources, requested_tokens)."""
    notes = [
        "layout of olmo_core.data.source_mixture.SourceMixtureDatasetConfig (OLMo-core 2.x/3.x);",
        "max_repetition_ratio: the planned epochs rounded up to 0.1, at least 1 (OLMo-core refuses a",
        "source whose files hold fewer tokens than target_ratio x requested_tokens / max_repetition_ratio);",
        "paths may be globs of your token files",
    ]
    config: dict[str, Any] = {
        "source_list": {
            "sources": [
                {
                    "source_name": s.domain,
                    "target_ratio": number(s.weight),
                    "paths": [paths[s.domain]],
                    "max_repetition_ratio": max_repetition(s.epochs),
                }
                for s in p.shares
            ]
        },
        "requested_tokens": p.budget.tokens,
    }
    if p.budget.tokens_per_step is not None:
        config["global_batch_size"] = p.budget.tokens_per_step
    else:
        notes.append("global_batch_size (tokens per optimiser step of your run) is yours to add")
    return comment(summary(p, "OLMo-core", source, notes)) + yaml.safe_dump(config, sort_keys=False)


def to_litdata(p: Plan, source: str, paths: Mapping[str, str]) -> str:
    """JSON: `datasets`, a list of {"input_dir", "weight"} in one order, and what they mean."""
    notes = [
        "litdata CombinedStreamingDataset(datasets, weights=[d['weight'] for d in datasets], "
        "iterate_over_all=False): for every item it picks dataset i with probability "
        "weight_i / sum(weights)",
        "so a weight is a token share only when every item holds the same number of tokens: "
        "StreamingDataset(input_dir, item_loader=TokensLoader(block_size)) as litgpt pre-trains; "
        "for one document per item use --to hf-datasets probabilities",
        "the combined stream stops when any dataset is exhausted: a domain planned over 1 epoch "
        "needs more passes (train by steps)",
    ]
    return _json(
        p,
        source,
        "litdata",
        notes,
        [
            {"input_dir": paths[s.domain], "weight": number(s.weight), "domain": s.domain, "planned_epochs": s.epochs}
            for s in p.shares
        ],
    )


def to_hf_datasets(p: Plan, source: str, paths: Mapping[str, str], domains: Mapping[str, Mapping[str, Any]]) -> str:
    """JSON: `probabilities` for `datasets.interleave_datasets`, per document, in `datasets` order."""
    probs, mean_len, estimated = document_probabilities(p, domains)
    notes = [
        "interleave_datasets(datasets, probabilities=probabilities, stopping_strategy='all_exhausted') "
        "draws documents, not tokens: probability_i = (weight_i / mean_len_i) / sum_j (weight_j / mean_len_j), "
        "mean_len = train_tokens / train documents, so each domain's expected token share is its weight",
        "'all_exhausted' restarts a domain that runs out (train by steps); the default "
        "'first_exhausted' ends the stream when the first domain runs out",
    ]
    if estimated:
        notes.append(
            "train documents estimated as documents x train_tokens / (train_tokens + valid_tokens): "
            "the domains table counts documents of both splits together"
        )
    datasets = [
        {
            "path": paths[s.domain],
            "probability": number(probs[s.domain]),
            "domain": s.domain,
            "token_weight": number(s.weight),
            "mean_document_tokens": mean_len[s.domain],
            "planned_epochs": s.epochs,
        }
        for s in p.shares
    ]
    return _json(
        p,
        source,
        "Hugging Face datasets.interleave_datasets",
        notes,
        datasets,
        probabilities=[d["probability"] for d in datasets],
    )


def _json(p: Plan, source: str, target: str, notes: Sequence[str], datasets: list[dict], **extra: Any) -> str:
    """JSON cannot carry comments: the summary goes under `about`, warnings under `warnings`."""
    doc = {
        "about": summary(p, target, source, notes),
        "mixture": p.name,
        "token_budget": p.budget.tokens,
        "warnings": p.warnings(),
        **extra,
        "datasets": datasets,
    }
    return json.dumps(doc, indent=2) + "\n"
