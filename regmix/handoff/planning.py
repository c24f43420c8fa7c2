"""What an exported mixture is planned for, and where each domain's data lives.

The pipeline's mixtures are token shares: the fraction of the large run's training tokens
each domain supplies (`results/compare/<name>.json`). A plan keeps the non-zero weights,
normalised to sum to 1, for a token budget (`--tokens`, else the large run's), with each
domain's planned tokens and epochs (weight x budget / domain train tokens) and a warning for
each domain that repeats beyond the cap. Prefixes (a map file or a template) say where the
trainer reads each domain, per split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from regmix.choose.mixture_files import Compared, read_one
from regmix.config import LargeConfig, SampleConfig, from_dict, tokens_per_step, train_tokens
from regmix.errors import UserError
from regmix.files import existing, load_params


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
