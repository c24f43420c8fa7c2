"""The comparison: per-seed scores to means, intervals, the verdict, honest predictions; the report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from regmix.judge.comparison import SUMMARY, best_cheap, out_of_fold, over_prior, summarise
from regmix.judge.readme import README_BEGIN, README_END, readme_results, readme_with_results
from regmix.judge.report import proxy_scale_line, write_report
from regmix.judge.verdict_text import comparison_table, plain_verdict, verdict_lines
from regmix.statistics import resolvable, seeds_to_resolve


def run(loss: float, correct: int = 50) -> dict:
    task = {"accuracy": correct / 100, "correct": correct, "examples": 100, "domains": {"alpha": correct / 100}}
    return {
        "target_loss": loss,
        "domain_loss": {"alpha": loss, "beta": loss + 1},
        "downstream": {"last_word": task, "continuation": {**task, "chance": 0.25}},
    }


RUNS = {
    "regmix": {0: run(2.0), 1: run(2.1), 2: run(1.9)},
    "best_proxy": {0: run(2.05), 1: run(2.15), 2: run(1.95)},  # 0.05 worse: inside the noise
    "uniform": {0: run(2.6)},  # one seed: borrows the pooled noise, still clearly worse
    "random_1": {0: run(1.5)},  # clearly better
}
PREDICTED = {"regmix": 1.0, "best_proxy": 1.02, "uniform": 1.4, "random_1": 0.9}
MIXTURES = {
    "regmix": {"alpha": 0.5, "beta": 0.5},
    "best_proxy": {"alpha": 0.9, "beta": 0.1},
    "uniform": {"alpha": 0.5, "beta": 0.5},
    "random_1": {"alpha": 0.2, "beta": 0.8},
}


def test_summary_means_intervals_and_verdicts():
    out = summarise(RUNS, PREDICTED, {n: "regressor" for n in RUNS})
    json.dumps(out, allow_nan=False)
    assert out["regmix"]["target_loss"] == pytest.approx(2.0) and out["regmix"]["seeds"] == 3
    low, high = out["uniform"]["target_loss_ci95"]
    assert low < 2.6 < high
    noise = out[SUMMARY]["seed_noise"]
    assert noise["df"] == 4 and noise["std"] == pytest.approx(0.1)
    assert out[SUMMARY]["verdict"] == {
        "better": ["random_1"],
        "worse": ["uniform"],
        "not distinguishable": ["best_proxy"],
        "unknown": [],
    }
    assert out[SUMMARY]["ranking"] == ["random_1", "regmix", "best_proxy", "uniform"]
    assert out[SUMMARY]["regmix_rank"] == 2
    assert out["best_proxy"]["vs_regmix"]["difference"] == pytest.approx(0.05)
    assert "vs_regmix" not in out["regmix"]
    assert out[SUMMARY]["spearman"]["n"] == 4 and out[SUMMARY]["spearman"]["rho"] == pytest.approx(1.0)
    lw = out["regmix"]["downstream"]["last_word"]
    assert lw["accuracy"] == 0.5 and lw["ci95"] == pytest.approx([0.4038, 0.5962], abs=1e-4)


def test_a_mixture_on_regmix_runs_is_listed_not_compared_or_ranked():
    """`random_2` is regmix's mixture scored on its seed 0 run: it sits first by loss, yet regmix ranks
    first of the distinct mixtures and the rank correlation counts each run once."""
    runs = {**RUNS, "random_2": {0: RUNS["regmix"][2]}, "random_1": {0: run(2.3)}}
    out = summarise(runs, {**PREDICTED, "random_2": 1.0}, {}, runs_of={"random_2": "regmix"})
    assert out["random_2"]["runs_of"] == "regmix" and "vs_regmix" not in out["random_2"]
    summary = out[SUMMARY]
    assert summary["ranking"][0] == "random_2" and summary["regmix_rank"] == 1 and summary["mixtures"] == 4
    assert summary["runs_of_regmix"] == ["random_2"] and summary["spearman"]["n"] == 4
    assert "random_2" not in sum(summary["verdict"].values(), [])
    lines = verdict_lines(out, "mean")
    assert (
        "`regmix` ranks 1 of 4 by mean target loss (not distinguishable from some of the others: see below)." in lines
    )  # a rank the tests cannot tell apart is not bolded
    assert "- `regmix`'s own mixture, scored on its runs (not compared, not ranked): `random_2`" in lines
    assert "| random_2 | 1 (regmix's runs) | 1.900" in comparison_table(out)


def test_without_replicates_nothing_is_called_distinguishable():
    out = summarise({n: {0: r[0]} for n, r in RUNS.items()}, PREDICTED, {})
    assert out[SUMMARY]["verdict"]["unknown"] == ["random_1", "best_proxy", "uniform"]
    assert out["regmix"]["target_loss_ci95"] == [None, None]
    json.dumps(out, allow_nan=False)


def test_out_of_fold_predictions_for_swarm_rows_only():
    swarm = pd.DataFrame({"id": [7, 8], "alpha": [0.9, 0.3], "beta": [0.1, 0.7]})
    cv = pd.DataFrame({"id": [7, 8], "predicted": [1.5, 1.7]})
    assert out_of_fold(MIXTURES, swarm, cv) == {"best_proxy": 1.5}


def test_report_opens_with_the_verdict(tmp_path):
    out = summarise(RUNS, PREDICTED, {n: "regressor" for n in RUNS})
    write_report(out, MIXTURES, "mean", tmp_path / "results" / "report.md", tmp_path / "plots")
    text = (tmp_path / "results" / "report.md").read_text()
    verdict = text[text.index("## Verdict") : text.index("## Mixtures")]
    assert "`regmix` ranks 2 of 4 by mean target loss (not distinguishable" in verdict
    assert "Distinguishably better than `regmix`: `random_1` (-0.500" in verdict
    assert "Not distinguishable from `regmix`: `best_proxy` (+0.050" in verdict
    assert "Distinguishably worse than `regmix`: `uniform` (+0.600" in verdict
    assert "Welch's two-sided t-test" in verdict and "Holm-adjusted over the 3 comparisons" in verdict
    assert "not external benchmarks" in text and "Wilson" in text
    assert "](../plots/target_loss.png)" in text
    for name in ("target_loss.png", "predicted_vs_measured.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
    proxies = {"proxies": 64, "params": 1000, "tokens_per_proxy": 2048, "seed_noise": {"pairs": 8, "target_std": 0.03}}
    fit = {
        "model": "lightgbm",
        "target": "mean",
        "cv": {"spearman": 0.9, "rmse": 0.1, "n": 64, "folds": 5},
        "resolution": {"smallest_resolved_difference": 0.277, "pairs": 2016},
    }
    sections = readme_results(out, proxies, fit, {"train": {"alpha": 0.8, "beta": 0.2}})
    readme = sections.page
    assert "Seed noise of a proxy's target loss: 0.030 nats (8 mixtures trained twice)" in readme
    assert (
        "Predicted differences below 0.28 nats are real with less than 95% probability (fitted to how the "
        "cross-validation ordered 2,016 pairs of proxies)."
    ) in readme and "alpha 80%, beta 20%" in readme
    assert (
        "`regmix` ranks 2 of 4 by mean target loss (not distinguishable from some of the others: see below)."
        in readme.splitlines()
    )
    # the README's: the plain verdict (links from the repository root), the table, the decision
    assert sections.readme.startswith("**The pipeline's answer is the mixture `regmix`** (alpha 80%, beta 20%;")
    assert comparison_table(out) in sections.readme and comparison_table(out) in sections.page
    assert sections.readme.rstrip().splitlines()[-1].startswith("How `regmix` was decided:")
    assert "Seed noise" not in sections.readme
    assert all(
        "is not part of the committed run" in s for s in readme_results(None, proxies, fit, {"train": {"alpha": 1.0}})
    )
    judged = {"gain": 0.52, "probability": 0.934, "pairs": 223, "scale": 0.34}
    kept = readme_results(None, proxies, fit, {"train": {"alpha": 1.0}, "confidence": {"prior": judged}}).page
    assert (
        "It is predicted 0.520 nats below the prior, a gain that is real with probability 93.4% (fitted to how "
        "the cross-validation ordered 223 pairs of proxies)."
    ) in kept
    marked = f"intro\n{README_BEGIN}\nold\n{README_END}\noutro\n"
    assert readme_with_results(marked, "new\n") == f"intro\n{README_BEGIN}\nnew\n{README_END}\noutro\n"


class Judge:
    """A regressor stand-in: its verdict on a gain is the gain itself, when it has out-of-fold predictions."""

    def __init__(self, cv: bool):
        self.out_of_fold = ([1.0], [1.0]) if cv else None

    def beats(self, gain: float) -> dict:
        return {"gain": gain, "probability": 0.8, "pairs": 10, "scale": 0.2}


def test_the_report_says_what_the_regression_claimed_over_the_prior():
    judged = Judge(cv=True).beats(0.25)
    assert over_prior({"train": MIXTURES["regmix"], "confidence": {"uniform": {}, "prior": judged}}) == judged
    assert over_prior({"train": MIXTURES["regmix"], "confidence": {}}) is None  # a fit without its CV
    assert over_prior({"train": MIXTURES["regmix"]}) is None
    out = summarise(RUNS, PREDICTED, {n: "regressor" for n in RUNS})
    assert "is not known" in proxy_scale_line(out, MIXTURES)
    out[SUMMARY]["over_prior"] = Judge(cv=True).beats(0.25)
    prior = {"alpha": 0.3, "beta": 0.7}
    assert proxy_scale_line(out, {**MIXTURES, "prior": prior}) == (
        "At the proxy scale `regmix` was predicted 0.250 nats below the prior, a gain that is real with probability "
        "80.0% (fitted to how the cross-validation ordered 10 pairs of proxies)."
    )
    kept = {**MIXTURES, "regmix": prior, "prior": {"alpha": 0.3000001, "beta": 0.6999999}}
    checked = {"choice": {"mixture": "prior", "by": "measured"}}  # the check took the prior: not a fallback
    assert proxy_scale_line(out, kept, checked) == (
        "At the proxy scale the search's choice was predicted 0.250 nats below the prior, a gain that is real with "
        "probability 80.0% (fitted to how the cross-validation ordered 10 pairs of proxies); the large runs train "
        "`prior`'s mixture as `regmix` instead (the check below)."
    )
    assert proxy_scale_line(out, kept, {"choice": {"mixture": "regmix", "by": "search"}}).startswith(
        "At the proxy scale `regmix` was"
    )


def test_regmix_minus_the_best_cheap_baseline():
    def entry(loss, difference, low, high, verdict):
        return {
            "target_loss": loss,
            "vs_regmix": {"difference": difference, "ci95": [low, high], "p_holm": 0.01, "verdict": verdict},
        }

    entries = {
        "regmix": {"target_loss": 2.0},
        "best_proxy": entry(1.5, -0.5, -0.7, -0.3, "better"),
        "uniform": entry(2.6, 0.6, 0.4, 0.8, "worse"),
        "nearest": entry(2.2, 0.2, 0.1, 0.3, "worse"),
    }
    assert best_cheap(entries) == {
        "mixture": "nearest",
        "regmix_minus": -0.2,
        "ci95": [-0.3, -0.1],
        "p_holm": 0.01,
        "verdict": "regmix better",
    }  # best_proxy needs proxies: not cheap
    assert best_cheap({"regmix": {"target_loss": 2.0}, "best_proxy": entries["best_proxy"]}) is None


def test_the_verdict_says_what_its_seeds_can_resolve():
    out = summarise(RUNS, PREDICTED, {n: "regressor" for n in RUNS})
    resolves = out[SUMMARY]["resolves"]
    assert resolves["seeds"] == 3 and resolves["fewest_seeds"] == 1 and resolves["tests"] == 3
    assert resolves["difference"] == pytest.approx(resolvable(0.1, 3, 1, 3))
    out[SUMMARY]["over_prior"] = {"gain": 0.1}
    line = verdict_lines(out, "alpha")[-1]
    assert f"{resolves['difference']:.3f} nats" in line and f"{seeds_to_resolve(0.1, 0.1, 3)} seeds" in line


def test_the_report_opens_in_plain_words():
    """uniform measured worse (distinguishable); with a prior within the noise the answer is not shown to beat both."""
    runs = {**RUNS, "prior": {0: run(2.05), 1: run(1.95)}}
    out = summarise(runs, {**PREDICTED, "prior": 1.1}, {})
    mixtures = {**MIXTURES, "prior": {"alpha": 0.3, "beta": 0.7}}
    opening = plain_verdict(out, mixtures, "mean")
    assert opening.startswith("**The pipeline's answer is the mixture `regmix`** (alpha 50%, beta 50%; `regmix export`")
    assert (
        "its large models measured 2.000, against 2.600 for `uniform` and 2.000 for `prior` (`regmix` lower than "
        "`uniform`; `regmix` within seed noise of `prior`)"
    ) in opening
    assert "not shown to beat both usual choices" in opening
    assert "(the verdict below says how many; terms are explained in the [glossary](../docs/glossary.md))" in opening
    linked = plain_verdict(out, {"regmix": {}}, "mean", glossary="glossary.md", verdict="results.md")
    assert linked.startswith("**The pipeline's answer is the mixture `regmix`** (`regmix export` writes it")
    assert "(the [verdict](results.md) says how many; terms are explained in the [glossary](glossary.md))" in linked
    beaten = summarise({n: r for n, r in RUNS.items() if n != "random_1"}, PREDICTED, {})
    assert plain_verdict(beaten, MIXTURES, "mean").endswith("on this evidence it is the better choice.")
