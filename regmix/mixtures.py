"""Mixtures over domains: validation of user-given ones, and the baselines every run compares.

A mixture is a weight per domain, non-negative, summing to 1. Arrays of mixtures are
(n, d) with columns in the domain order of the domains table.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from regmix.errors import UserError


def validate_mixture(
    weights: Mapping[str, float], domains: Sequence[str], where: str, tol: float = 1e-6
) -> dict[str, float]:
    """Check a user-given mixture and return it over all `domains` (missing ones get 0.0).

    `where` is the config key the mixture came from; every error names it.
    """
    if not isinstance(weights, Mapping):
        raise UserError(f"{where}: expected a mapping domain -> weight, got {type(weights).__name__}")
    known = set(domains)
    unknown = sorted(str(k) for k in weights if k not in known)
    if unknown:
        raise UserError(f"{where}: unknown domain(s) {', '.join(unknown)}; known: {', '.join(domains)}")
    out = {}
    for name in domains:
        value = weights.get(name, 0.0)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}.{name}: weight {value!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"{where}.{name}: weight {value} must be finite and >= 0")
        out[name] = value
    total = sum(out.values())
    if abs(total - 1.0) > tol:
        raise UserError(f"{where}: weights sum to {total:.6g}, not 1")
    return out


TARGET_ONLY, NEAREST = "target_only", "nearest"  # computed for the target (regmix.choose.baselines)
NO_PROXY = ("uniform", "prior", TARGET_ONLY, NEAREST)  # the cheap baselines: made without a single proxy


def baseline_mixtures(
    prior: Mapping[str, float], human: Mapping[str, Mapping[str, float]] | None
) -> dict[str, dict[str, float]]:
    """The mixtures every search and comparison reports: uniform, the prior, and hand-made ones.

    `human` comes from the top-level `human_mixtures` key of params; its names must not
    shadow `uniform` or `prior`.
    """
    domains = list(prior)
    out = {"uniform": {d: 1.0 / len(domains) for d in domains}, "prior": validate_mixture(prior, domains, "prior")}
    for name, weights in (human or {}).items():
        if name in out:
            raise UserError(f"human_mixtures.{name}: the name is reserved for a built-in baseline")
        out[name] = validate_mixture(weights, domains, f"human_mixtures.{name}")
    return out


# RegMix's token share of the 17 Pile domains it mixes (TinyLlama tokenizer; sums to 1 within
# 1e-9). A ready `sample.prior` for Pile runs; tests and benchmarks use it.
PILE_TOKEN_SHARE = {
    "arxiv": 0.113285273, "freelaw": 0.079608651, "nih_exporter": 0.003913491,
    "pubmed_central": 0.185375901, "wikipedia_en": 0.051081359, "dm_mathematics": 0.015962925,
    "github": 0.101750772, "philpapers": 0.003707518, "stackexchange": 0.066529351,
    "enron_emails": 0.001750772, "gutenberg_pg_19": 0.027085479, "pile_cc": 0.236869207,
    "ubuntu_irc": 0.01184346, "europarl": 0.007929969, "hackernews": 0.008032956,
    "pubmed_abstracts": 0.038825953, "uspto_backgrounds": 0.046446962,
}  # fmt: skip
