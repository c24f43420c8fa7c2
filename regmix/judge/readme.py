"""The results sections of README.md and docs/results.md, written between their markers by
`make readme` (`python -m regmix.judge.readme`) from the committed metrics/ and results/ only:
the proxy-scale half (swarm, regression, the choice), the check, the decision, the scored sets and,
when the large runs are committed, the verdict (regmix.judge.verdict_text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import pandas as pd
import yaml

from regmix.choose.mixture_files import CHOSEN
from regmix.choose.regression import gain_text, resolved_text
from regmix.choose.verify import replaced
from regmix.choose.verify_text import verify_text
from regmix.files import write_text
from regmix.judge.verdict_text import (
    comparison_table,
    decision_line,
    markdown_table,
    plain_verdict,
    spearman_line,
    tasks_text,
    verdict_lines,
)


def proxies_line(proxies: Mapping[str, Any], fit: Mapping[str, Any], mixture: Mapping[str, Any]) -> str:
    """The proxy-scale half: swarm size, seed noise, CV of the regression, what it can resolve, the
    choice (`mixture`: results/mixture.yaml) and how sure the regression is that it beats the prior."""
    noise = proxies.get("seed_noise", {})
    r, cv = fit.get("resolution", {}), fit["cv"]
    top = sorted(mixture["train"].items(), key=lambda kv: -kv[1])
    weights = ", ".join(f"{d} {w:.0%}" for d, w in top if w >= 0.01)
    text = (
        f"{proxies['proxies']} proxies of {proxies['params']:,} parameters ({proxies['tokens_per_proxy']:,} tokens "
        f"each); {fit['model']} on `{fit['target']}`: cross-validated Spearman {cv['spearman']:.2f}, "
        f"RMSE {cv['rmse']:.3f} nats (n = {cv['n']}, {cv['folds']} folds)."
    )
    if noise.get("pairs"):
        text += (
            f" Seed noise of a proxy's target loss: {noise['target_std']:.3f} nats ({noise['pairs']} mixtures "
            "trained twice)."
        )
    if r:
        text += " " + resolved_text(r) + "."
    return text + f" The chosen mixture: {weights}." + over_prior_text(mixture)


def over_prior_text(mixture: Mapping[str, Any]) -> str:
    """The choice against the prior at the proxy scale, as the regression judged it."""
    judged = mixture.get("confidence", {}).get("prior")
    return f" It is {gain_text(judged)}." if judged else ""


NOT_COMPARED = (
    "The large-scale comparison (the `train` and `evaluate` stages) is not part of the committed "
    "run: `make demo` trains every compared mixture and writes the verdict to `results/report.md`."
)


def sets_text(sets: Mapping[str, Mapping[str, Any]]) -> str:
    """What every model is scored on: each set's role, held-out documents per split and the share of
    its test 13-grams found in the train shards (results/domains.json)."""
    rows = [
        {
            "set": name,
            "role": "trained on" if d.get("role", "train") == "train" else "held out",
            "train docs": d.get("train_documents", 0),
            "valid docs": d.get("valid_documents", 0),
            "test docs": d.get("test_documents", 0),
            "test 13-grams in train": f"{d['test_13gram_in_train']:.1%}" if "test_13gram_in_train" in d else "-",
        }
        for name, d in sets.items()
    ]
    held = sum(r["role"] == "held out" for r in rows)
    return (
        f"Every model is scored on {len(rows)} sets ({len(rows) - held} trained on, {held} held out): "
        "selection (proxies, fit, search, verify) reads valid, the verdict reads test, and no document is in "
        "both.\n\n" + markdown_table(pd.DataFrame(rows))
    )


class Sections(NamedTuple):
    """The results sections of one run: the README's (`readme`: the answer in plain words, the
    comparison table, how `regmix` was decided) and docs/results.md's (`page`: every figure)."""

    readme: str
    page: str


README_PAGE = "docs/results.md"  # the README's link to the full section; the page's own path


def readme_results(
    results: Mapping[str, Any] | None,
    proxies: Mapping[str, Any],
    fit: Mapping[str, Any],
    mixture: Mapping[str, Any],
    verify: Mapping[str, Any] | None = None,
    sets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Sections:
    """The README's results section and docs/results.md's, made from the committed metrics and
    results only (`results` None: no large-scale comparison committed; `verify` None: no proxy-scale
    check; `sets`: results/domains.json)."""
    head = [
        proxies_line(proxies, fit, mixture),
        "",
        *([verify_text(verify), ""] if verify is not None else []),
        decision_line(verify, mixture),
        "",
        *([sets_text(sets), ""] if sets else []),
    ]
    if results is None:
        page = "\n".join([*head, NOT_COMPARED]) + "\n"
        return Sections(
            "\n".join([proxies_line(proxies, fit, mixture), "", NOT_COMPARED, "", decision_line(verify, mixture)])
            + "\n",
            page,
        )
    # regmix's weights are the search's choice unless the check replaced it (then not named here)
    chosen = {CHOSEN: {} if replaced(verify or {}) else mixture["train"]}
    page = (
        "\n".join(
            [
                plain_verdict(results, chosen, fit["target"], glossary="glossary.md"),
                "",
                *head,
                *verdict_lines(results, fit["target"]),
                "",
                spearman_line(results),
                "",
                comparison_table(results),
                "",
                tasks_text(results),
            ]
        )
        + "\n"
    )
    readme = (
        "\n".join(
            [
                plain_verdict(results, chosen, fit["target"], glossary="docs/glossary.md", verdict=README_PAGE),
                "",
                comparison_table(results),
                "",
                decision_line(verify, mixture),
            ]
        )
        + "\n"
    )
    return Sections(readme, page)


README_BEGIN = "<!-- results: generated by `make readme` from metrics/ and results/; do not edit -->"
README_END = "<!-- end of generated results -->"


def readme_with_results(readme: str, section: str) -> str:
    """`readme` with the text between its results markers replaced by `section`."""
    start, end = readme.index(README_BEGIN) + len(README_BEGIN), readme.index(README_END)
    return readme[:start] + "\n" + section + readme[end:]


def committed_results(root: str | Path = ".") -> Sections:
    """The README's and docs/results.md's results sections from the committed metrics/ and results/
    under `root`."""
    root = Path(root)
    read = lambda rel: json.loads((root / rel).read_text())  # noqa: E731
    mixture = yaml.safe_load((root / "results/mixture.yaml").read_text())
    optional = {
        rel: read(rel) if (root / rel).exists() else None for rel in ("results/evaluation.json", "results/verify.json")
    }
    return readme_results(
        optional["results/evaluation.json"],
        read("results/proxy_run.json"),
        read("results/fit.json"),
        mixture,
        optional["results/verify.json"],
        read("results/domains.json"),
    )


if __name__ == "__main__":  # make readme: README.md's and docs/results.md's results sections
    for path, section in zip(("README.md", README_PAGE), committed_results()):
        write_text(Path(path), readme_with_results(Path(path).read_text(), section))
