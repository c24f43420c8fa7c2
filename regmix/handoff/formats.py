"""A plan written in each trainer's own shape and, for some, its own unit.

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

Every export first states the plan (`summary`): as comment lines, or under `about` in JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

import yaml

from regmix.errors import UserError
from regmix.handoff.planning import Plan

FORMATS = ("megatron", "olmo-core", "litdata", "hf-datasets")
SPLITS = ("train", "valid")
TRAIN = "train"


# ------------------------------------------------------------------ unit conversions
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


def render(
    to: str,
    p: Plan,
    source: str,
    paths: Callable[[str | None], Mapping[str, str]],
    splits: Sequence[str],
    domains: Mapping[str, Mapping[str, Any]],
) -> str:
    """`p` in format `to` (one of FORMATS); `paths(split)` gives each domain's prefix. Megatron
    writes one line per split in `splits` (one `--data-path` when empty), the others the train split."""
    if to == "megatron":
        return to_megatron(p, source, paths, splits)
    if to == "olmo-core":
        return to_olmo_core(p, source, paths(TRAIN))
    if to == "litdata":
        return to_litdata(p, source, paths(TRAIN))
    return to_hf_datasets(p, source, paths(TRAIN), domains)
